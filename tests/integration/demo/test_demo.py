"""``mlplat demo`` end to end: the three scenarios end as described, and the store agrees.

Runs the real command in a fresh working directory, exactly as a newcomer would (the service and
the traffic generator are its child processes, the controller runs inside it), then reads the
demo's own store: the summary must not merely *say* the canary was rolled back and the other
promoted, the event log and MLflow must show it. About 1.5 to 2 minutes on two cores.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from registry import Action, EventStatus, RegistrySettings, open_registry

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEMO_DEADLINE_S = 420.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Run ``mlplat demo --json --out out`` once in a fresh directory; return it and the JSON."""
    cwd = tmp_path_factory.mktemp("demo-cwd")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLAT_", "MLFLOW_"))}
    done = subprocess.run(
        [sys.executable, "-m", "mlplat", "demo", "--json", "--out", "out"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=DEMO_DEADLINE_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-4000:]}"
    return cwd, json.loads(done.stdout)


def test_all_three_scenarios_end_as_described(demo_run: tuple[Path, dict[str, Any]]) -> None:
    """Skew rolled back, good candidate promoted, drift alerted with a retrain and no move."""
    _, summary = demo_run
    outcomes = {s["key"]: (s["outcome"], s["passed"]) for s in summary["scenarios"]}
    assert outcomes == {
        "skew-canary": ("rolled_back", True),
        "good-canary": ("promoted", True),
        "champion-drift": ("alert+retrain", True),
    }
    assert summary["ok"] is True
    # How long each verdict took is reported, not judged here: timing belongs in benchmarks.
    assert all(s["seconds_to_verdict"] is not None for s in summary["scenarios"])
    skew = summary["scenarios"][0]["evidence"]["judgement"]
    assert skew["verdict"] == "rollback"
    assert skew["signals"]["prediction_distribution"]["decision"] == "worse"
    drift = summary["scenarios"][2]["evidence"]
    assert drift["recommendation"]["actions"] == ["alert", "retrain"]
    assert drift["retrain_decision_recorded"]["model_version"] == drift["drift_check"]["version"]
    assert drift["events_while_drifting"] == []


def test_the_outputs_are_written(demo_run: tuple[Path, dict[str, Any]]) -> None:
    """summary.json equals the printed JSON; there is an HTML report and a real PNG."""
    cwd, summary = demo_run
    out = cwd / "out"
    assert json.loads((out / "summary.json").read_text()) == summary
    reports = list((out / "reports").glob("*.html"))
    assert reports
    assert all(r.stat().st_size > 10_000 for r in reports)
    assert (out / "timeline.png").read_bytes()[:8] == PNG_MAGIC
    assert not (cwd / ".mlplat").exists(), "the demo must not touch ./.mlplat"


def test_the_store_agrees_with_the_summary(demo_run: tuple[Path, dict[str, Any]]) -> None:
    """The event log shows the judge's reject and promote; MLflow marks the skew rejected."""
    cwd, summary = demo_run
    store = (cwd / "out" / "store").absolute()
    registry = open_registry(
        RegistrySettings(
            home=store,
            tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
            events_url=f"sqlite:///{store / 'events.db'}",
            actor="test",
        )
    )
    skew = summary["scenarios"][0]["evidence"]["pipeline"]["model_version"]
    good = summary["scenarios"][1]["evidence"]["pipeline"]["model_version"]
    events = registry.events.history(registry.model_name, 100, status=EventStatus.APPLIED)
    rejects = [e for e in events if e.action is Action.REJECT]
    promotes = [e for e in events if e.action is Action.PROMOTE]
    assert [(e.from_version, e.details.get("decided_by")) for e in rejects] == [(skew, "judge")]
    assert [(e.to_version, e.details.get("decided_by")) for e in promotes] == [(good, "judge")]
    assert registry.version(skew).rejected
    assert registry.state().champion == good
    assert not any(e.action is Action.ROLLBACK for e in events)


def test_nothing_is_left_running(demo_run: tuple[Path, dict[str, Any]]) -> None:
    """The service the demo started no longer listens once the command has returned."""
    _, summary = demo_run
    url = urlsplit(summary["setup"]["serving_url"])
    with socket.socket() as sock:
        sock.settimeout(2)
        assert sock.connect_ex((url.hostname or "127.0.0.1", url.port or 0)) != 0
