"""The alert path end to end: CanaryDegraded asks the judge, and only the judge decides.

The stack (``stack.py``) with real Prometheus and Alertmanager. ``CanaryDegraded`` is rendered
with thresholds forced low (canary p99 above 0 times the champion's, any traffic) and ``for:
5s``, so it fires for *every* canary with traffic — the noisiest alert possible — and
Alertmanager repeats it every 5 s. The breaker is left out of the copy, so a rollback here can
only be the judge's. The controller judges windows of 5 s but cycles only every 10 minutes, so
every judgement in this test is one the alert path asked for.

1. A healthy canary (a good model of its own) under 40 requests/s from 8 concurrent senders:
   the alert fires for it, the judge looks again and again, says *continue*, and nothing moves.
2. The defective canary replaces it: the alert about the old version keeps firing for minutes
   (its 5-minute rate) and is ignored (another ``model_version``); the alert about the new one
   makes the judge look, and the judge rolls it back. The event says ``decided_by=judge``,
   ``triggered_by="alert CanaryDegraded"`` and the signals that decided.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from registry import Action, DeploymentEvent, EventStatus
from tests.integration.monitoring.stack import (
    Deployed,
    Ports,
    Processes,
    Tools,
    controller_sample,
    prometheus_query,
    render_rules,
    start_controller,
    start_stack,
    start_traffic,
    substitute,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEALTHY_LOOKS = 3
LOOKS_DEADLINE_S = 90.0
ROLLBACK_DEADLINE_S = 60.0
ALERTS = "mlplat_controller_alerts_total"

# Every canary with traffic "looks worse": the latency branch with its thresholds at nothing.
ALWAYS_FIRING = substitute(
    (":ratio_rate5m > 1.5", ":ratio_rate5m > 0"),
    (") > 0.025", ") > -1"),
    ("* 300 >= 100", "* 300 > 0"),
    duration="5s",
)


def test_the_alert_path_never_rolls_back_a_healthy_canary_and_the_judge_rolls_back_a_bad_one(
    tools: Tools, processes: Processes, deployed: Deployed, tmp_path: Path
) -> None:
    """CanaryDegraded firing moves nothing for a healthy canary; the judge rejects a faulty one."""
    registry = deployed.registry
    registry.start_canary(deployed.healthy, 0.5, reason="it: gate passed")
    ports = Ports()
    work = tmp_path / "stack"
    work.mkdir()
    rules = render_rules(work, {"CanaryDegraded": ALWAYS_FIRING, "CanaryCircuitBreaker": None})
    env = start_stack(
        processes, tools, deployed, ports, work, rules, canary=deployed.healthy,
        repeat_interval="5s",
    )  # fmt: skip
    env["MLPLAT_MONITOR_JUDGE_WINDOW_SECONDS"] = "5"
    start_controller(processes, env, ports, interval=600)
    start_traffic(processes, deployed, ports, work / "traffic.json", duration=240)

    # 1. The healthy canary: the alert fires, the judge looks, nothing moves.
    def looked_enough() -> bool:
        return controller_sample(ports, ALERTS, decided_by="judge", action="unchanged") >= (
            HEALTHY_LOOKS
        )

    processes.until("controller", looked_enough, LOOKS_DEADLINE_S, "judge looks on alerts")
    firing = prometheus_query(ports, 'ALERTS{alertname="CanaryDegraded", alertstate="firing"}')
    assert {s["metric"]["model_version"] for s in firing} == {str(deployed.healthy)}
    state = registry.state()
    assert (state.challenger, state.canary_weight) == (deployed.healthy, 0.5)
    moves = {e.action for e in registry.history(50)}
    assert Action.REJECT not in moves
    assert Action.PROMOTE not in moves
    for verdict in ("rollback", "inconclusive"):
        assert controller_sample(ports, "mlplat_canary_verdicts_total", verdict=verdict) == 0
    healthy_looks = controller_sample(ports, ALERTS, decided_by="judge", action="unchanged")

    # 2. The defective canary replaces it; only the judge can roll it back.
    registry.start_canary(deployed.defective, 0.5, reason="it: next candidate")

    def rejects() -> list[DeploymentEvent]:
        return [
            e
            for e in registry.history(50)
            if e.action is Action.REJECT and e.status is EventStatus.APPLIED
        ]

    processes.until(
        "controller", lambda: bool(rejects()), ROLLBACK_DEADLINE_S, "defective canary rolled back"
    )
    (event,) = rejects()
    assert registry.state().challenger is None
    assert event.from_version == deployed.defective
    assert event.details["decided_by"] == "judge"
    assert event.details["triggered_by"] == "alert CanaryDegraded"
    signals = event.details["signals"]
    assert isinstance(signals, list)
    # The whole-traffic or a per-slice error rate: the defect fails some segments more.
    assert {"error_rate", "slice_error_rate"} & set(signals), signals
    alerts = event.details["alerts"]
    assert isinstance(alerts, list)
    labels = [a["labels"] for a in alerts if isinstance(a, dict)]
    assert {str(lab["model_version"]) for lab in labels if isinstance(lab, dict)} == {
        str(deployed.defective)
    }
    assert event.reason.startswith("canary judge (looked on alert CanaryDegraded): roll back")
    assert not registry.version(deployed.healthy).rejected
    # Both signals of the canary came in one notification (grouped by version): one look.
    assert controller_sample(ports, ALERTS, decided_by="judge", action="rolled_back") >= 1
    assert controller_sample(ports, "mlplat_canary_verdicts_total", verdict="rollback") == 1

    # The healthy version's alert still fires (its 5-minute rate) and is told apart by version.
    def old_alert_ignored() -> bool:
        return controller_sample(ports, ALERTS, decided_by="none", action="ignored") >= 1

    processes.until("controller", old_alert_ignored, 30, "the old version's alert ignored")
    assert controller_sample(ports, ALERTS, decided_by="judge", action="unchanged") >= (
        healthy_looks
    )
    print(f"\njudge looks on alerts for the healthy canary: {healthy_looks:g}, none moved")
