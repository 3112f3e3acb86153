"""A catastrophic canary, end to end: the circuit breaker rolls it back, restart-safe.

The stack (``stack.py``): the inference service with champion v1 and the defective version at
50 % (most of its requests fail with ``inference_failure``), ``mlplat traffic``, Prometheus,
Alertmanager and the controller, which is killed with SIGKILL mid-canary and started again
before the traffic begins.

``CanaryCircuitBreaker`` is the one alert the controller acts on without its judge. Here it
waits ``for: 10s`` instead of a minute (promtool tests pin the shipped timing), and the rendered
copy leaves ``CanaryDegraded`` out while the judge's windows last an hour, so that what rolls the
canary back is the breaker and nothing else (the judge's own path is ``test_alert_path.py``).
The test asserts the rollback happens within a deadline, writes exactly one ``reject`` event
that says ``decided_by=circuit_breaker`` and names the alert, and that the canary's drift report
is attached to its MLflow run afterwards.
"""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitoring.sources import PrometheusSource
from registry import Action, DeploymentEvent, EventStatus
from tests.integration.monitoring.stack import (
    Deployed,
    Ports,
    Processes,
    Tools,
    render_rules,
    start_controller,
    start_stack,
    start_traffic,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROLLBACK_DEADLINE_S = 90.0
REPORT_DEADLINE_S = 120.0


def test_a_failing_canary_trips_the_circuit_breaker_and_is_rolled_back_without_the_judge(
    tools: Tools, processes: Processes, deployed: Deployed, tmp_path: Path
) -> None:
    """Failing canary: the breaker alert rejects it once, across controller kills, judge unused."""
    registry = deployed.registry
    canary = deployed.defective
    registry.start_canary(canary, 0.5, reason="it: gate passed")
    ports = Ports()
    work = tmp_path / "stack"
    work.mkdir()
    rules = render_rules(work, {"CanaryCircuitBreaker": wait_for("10s"), "CanaryDegraded": None})
    controller_env = start_stack(processes, tools, deployed, ports, work, rules, canary=canary)
    # The judge's windows last an hour: within this test only the breaker can roll back.
    controller_env["MLPLAT_MONITOR_JUDGE_WINDOW_SECONDS"] = "3600"

    # Killed in the middle of the canary, and started again: it must pick up where it was.
    start_controller(processes, controller_env, ports)
    processes.kill("controller", signal.SIGKILL)
    start_controller(processes, controller_env, ports)

    load_started = datetime.now(UTC)
    start_traffic(processes, deployed, ports, work / "traffic.json", duration=150)

    def rejects() -> list[DeploymentEvent]:
        return [
            e
            for e in registry.history(50)
            if e.action is Action.REJECT and e.status is EventStatus.APPLIED
        ]

    processes.until("traffic", lambda: bool(rejects()), ROLLBACK_DEADLINE_S, "canary rolled back")
    (event,) = rejects()
    assert registry.state().challenger is None
    assert event.applied_at is not None
    seconds = (event.applied_at - load_started).total_seconds()
    print(f"\ntime to rollback after the load started: {seconds:.1f} s")
    (work / "time-to-rollback.json").write_text(json.dumps({"seconds": seconds}))
    assert event.from_version == canary
    assert event.details["decided_by"] == "circuit_breaker"
    assert event.details["signals"] == ["server_error_share"]
    assert event.details["triggered_by"] == "alert CanaryCircuitBreaker"
    assert event.evidence is not None
    assert "CanaryCircuitBreaker" in event.evidence
    assert f":{ports.prometheus}/graph?" in event.evidence  # the generatorURL
    alert = event.details["alert"]
    assert isinstance(alert, dict)
    labels = alert["labels"]
    assert isinstance(labels, dict)
    assert labels["breaker"] == "true"
    assert labels["model_version"] == str(canary)
    assert registry.version(canary).rejected
    state = registry.state()
    assert (state.champion, state.canary_weight) == (deployed.champion, 0.0)

    # The same numbers through the controller's PromQL: the canary failed, the champion did not.
    start = next(
        e.applied_at
        for e in registry.history(50)
        if e.action is Action.CANARY and e.to_version == canary
    )
    assert start is not None
    with httpx.Client(timeout=10) as http:
        source = PrometheusSource(http, f"http://127.0.0.1:{ports.prometheus}")
        counts = source.counts(deployed.champion, canary, start, datetime.now(UTC))
    assert counts["canary"].errors * 2 >= counts["canary"].requests
    assert counts["champion"].requests > 0
    assert counts["champion"].errors == 0

    # Prometheus scrapes the controller, which counted the breaker's rollback.
    def counted() -> bool:
        query = (
            'mlplat_controller_alerts_total{decided_by="circuit_breaker",action="rolled_back"} > 0'
        )
        body = httpx.get(
            f"http://127.0.0.1:{ports.prometheus}/api/v1/query", params={"query": query}, timeout=5
        ).json()
        return bool(body["data"]["result"])

    processes.until("controller", counted, 30, "Prometheus sees the breaker's rollback")
    processes.kill("traffic")

    # The canary's drift report ends up with its training run.
    def attached() -> bool:
        return bool(deployed.client.list_artifacts(deployed.runs[canary], "drift"))

    processes.until("controller", attached, REPORT_DEADLINE_S, "canary drift report attached")
    (artifact,) = deployed.client.list_artifacts(deployed.runs[canary], "drift")
    assert artifact.path.endswith(".html")
    assert "canary" in artifact.path

    # Killing and restarting once more changes nothing: still one verdict, one event.
    processes.kill("controller", signal.SIGKILL)
    start_controller(processes, controller_env, ports, canary_live=False)
    final = [e for e in registry.history(50) if e.action is Action.REJECT]
    assert [e.id for e in final] == [event.id]
