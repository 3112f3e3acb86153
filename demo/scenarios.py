"""The demo's three scenarios, each run against the live world and checked against the registry.

1. :func:`skew_canary` — a candidate whose training extract annualised ``debt_to_income``
   (:func:`demo.training.annualised_debt_to_income`) passes validation and the promotion
   gate, goes out as a canary, and the controller's judge rolls it back on live traffic.
2. :func:`good_canary` — a candidate trained on a fresh snapshot passes the gate and the canary,
   and the controller promotes it.
3. :func:`champion_drift` — traffic whose ``credit_score`` moved down by a standard deviation
   (``covariate-shift``) reaches the champion; the drift job flags it, the policy asks for an
   alert and a retrain, the retrain trigger records its decision, and no alias moves.

Nothing here decides a verdict: the controller does, with the real judge. A scenario only ships
what it ships, waits for the controller's cycle report, and then reads the event log and the
registry to check that what the controller *said* it did is what actually happened. The pure
checks (:func:`demo.verdicts.assess_canary`, :func:`demo.verdicts.assess_drift`) are
unit-tested.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from ci.stages import RunRequest, RunSummary
from demo.training import DTI_COLUMN, annualised_debt_to_income
from demo.verdicts import (
    Narrator,
    ScenarioResult,
    assess_canary,
    assess_drift,
    compact_judgement,
)
from demo.world import DemoTimeout, DemoWorld
from interfaces.routing import CANARY, CHAMPION
from monitoring.controller import CanaryReport, CycleReport, DriftReport
from registry import Action, DeploymentEvent, RegistryError

__all__ = [
    "FINISHED",
    "champion_drift",
    "good_canary",
    "skew_canary",
]

FINISHED: Final = ("rolled_back", "promoted", "paused")
"""Canary states after which the controller stops judging it."""
SKEW_DEFECT: Final = (
    "the training extract computed debt_to_income as monthly debt over annual income (a "
    "twelfth of the contract's ratio); in range, so validation passes; the holdout has the same "
    "units, so the gate passes; live traffic sends the contract's units"
)
MOVES: Final = (Action.PROMOTE, Action.ROLLBACK, Action.REJECT, Action.CANARY, Action.CHALLENGER)
"""Events that change who serves."""


def _registered(summary: RunSummary, say: Narrator) -> tuple[int | None, str]:
    if summary.outcome != "registered" or summary.model_version is None:
        why = "; ".join(summary.reasons[:3]) or summary.outcome
        return None, f"the pipeline did not register the candidate ({summary.outcome}): {why}"
    say.say(
        f"  pipeline: validation and gate passed, v{summary.model_version} registered as "
        f"{summary.alias} (holdout AUC {summary.metrics.get('auc', float('nan')):.3f})"
    )
    versus = _versus_champion(summary)
    if versus:
        say.say(f"  gate, champion scored on the same rows: {versus}")
    return summary.model_version, ""


def _versus_champion(summary: RunSummary) -> str | None:
    """The gate's paired comparison with the champion on the same holdout rows, in words."""
    for check in (summary.gate or {}).get("checks") or []:
        if check.get("name") == "auc_non_regression":
            return str(check.get("reason"))
    return None


def _pipeline_evidence(summary: RunSummary) -> dict[str, Any]:
    gate = summary.gate or {}
    return {
        "mlflow_run": summary.run_id,
        "model_version": summary.model_version,
        "holdout_metrics": {k: round(v, 4) for k, v in summary.metrics.items()},
        "validation_passed": bool((summary.validation or {}).get("success")),
        "gate_passed": bool(gate.get("passed")),
        "gate_summary": gate.get("summary"),
        "versus_champion": _versus_champion(summary),
    }


def _finished_canary(world: DemoWorld, version: int, since: int) -> CanaryReport | None:
    for report in world.reports(since):
        canary = report.canary
        if canary is not None and canary.version == version and canary.state in FINISHED:
            return canary
    return None


def _canary_progress(world: DemoWorld, version: int, since: int) -> str | None:
    for report in reversed(world.reports(since)):
        canary = report.canary
        if canary is not None and canary.version == version:
            held = f" [holding: {report.held_because[0]}]" if report.held_because else ""
            verdict = canary.verdict.value if canary.verdict else "observing"
            return f"window {canary.window}: {verdict}: {canary.reason}{held}"
    return None


def _event(world: DemoWorld, event_id: int | None) -> DeploymentEvent | None:
    if event_id is None:
        return None
    return next((e for e in world.registry.history(limit=50) if e.id == event_id), None)


def _canary_reports(world: DemoWorld, version: int) -> list[str]:
    return sorted(str(p) for p in world.paths.reports.glob(f"*-v{version}-canary-*.html"))


def _run_canary(
    world: DemoWorld,
    result: ScenarioResult,
    version: int,
    say: Narrator,
) -> CanaryReport | None:
    """Ship ``version`` as the canary and wait for the controller to finish with it."""
    champion = world.registry.state().champion
    world.wait_for_traffic(world.config.startup_timeout_s)
    since = world.report_count()
    event = world.start_canary(version, reason=f"demo: {result.title}")
    started = event.applied_at or event.created_at
    result.canary_at = world.elapsed(started)
    say.say(
        f"  canary: v{version} takes {world.config.canary_weight:.0%} of the traffic "
        f"next to champion v{champion} (event {event.id})"
    )
    result.evidence["canary_event_id"] = event.id

    def finished() -> CanaryReport | None:
        progress = _canary_progress(world, version, since)
        if progress:
            say.step(f"v{version} canary {progress}")
        return _finished_canary(world, version, since)

    try:
        report = world.wait(finished, world.config.scenario_timeout_s, f"verdict on v{version}")
    except DemoTimeout:
        report = None
        _withdraw(world, version, say)
    if report is not None:
        _record_verdict(world, result, report, started)
    state = world.registry.state()
    outcome, passed, why = assess_canary(
        result.expected,
        report,
        version=version,
        rejected=world.registry.version(version).rejected,
        champion_before=champion,
        champion_after=state.champion,
    )
    result.outcome, result.passed, result.why = outcome, passed, why
    result.evidence["registry_after"] = {"champion": state.champion, "challenger": state.challenger,
                                         "canary_weight": state.canary_weight}  # fmt: skip
    return report


def _withdraw(world: DemoWorld, version: int, say: Narrator) -> None:
    """Leave a clean registry for the next scenario, and say who did it."""
    try:
        world.registry.reject(
            version, reason="demo: no verdict within the scenario's time limit; withdrawn"
        )
    except RegistryError as exc:
        say.say(f"  [red]could not withdraw v{version}: {exc}[/]")


def _record_verdict(
    world: DemoWorld, result: ScenarioResult, report: CanaryReport, started: datetime
) -> None:
    """When the verdict was acted on (from its event), and the numbers behind it."""
    verdict_event = _event(world, report.event_id)
    if verdict_event is not None:
        at = verdict_event.applied_at or verdict_event.created_at
        result.verdict_at = world.elapsed(at)
        result.seconds_to_verdict = (at - started).total_seconds()
    result.evidence.update(
        {
            "verdict_event_id": report.event_id,
            "window": report.window,
            "counts": {k: dict(v) for k, v in report.counts.items()},
            "judgement": compact_judgement(report.judgement),
            "drift_reports": _canary_reports(world, report.version),
        }
    )


def skew_canary(world: DemoWorld, say: Narrator) -> ScenarioResult:
    """Scenario 1: a training-serving skew that passes every offline gate is rolled back live."""
    result = ScenarioResult(
        "skew-canary",
        "a candidate with a training-serving skew goes out as a canary",
        expected="rolled_back",
        started_at=world.elapsed(),
    )
    say.step("training a candidate on an extract that annualised debt_to_income")
    summary = world.trainer.run_with_upstream(
        RunRequest(
            seed=world.config.skew_seed,
            reason="demo scenario 1: the training extract divides debt_to_income by 12",
        ),
        annualised_debt_to_income,
        f"{DTI_COLUMN}-annualised",
        on_stage=lambda stage, status, detail: say.step(f"pipeline: {stage} {status} {detail}"),
    )
    version, problem = _registered(summary, say)
    result.evidence["defect"] = SKEW_DEFECT
    result.evidence["pipeline"] = _pipeline_evidence(summary)
    if version is None:
        result.outcome, result.why, result.ended_at = "not-registered", problem, world.elapsed()
        return result
    report = _run_canary(world, result, version, say)
    canary_drift = _canary_drift(world, version)
    if canary_drift:
        result.evidence["canary_input_drift"] = canary_drift
    result.ended_at = world.elapsed()
    _say_verdict(say, result, report)
    return result


def good_canary(world: DemoWorld, say: Narrator) -> ScenarioResult:
    """Scenario 2: a clean retrain passes the gate and the canary and is promoted."""
    result = ScenarioResult(
        "good-canary",
        "a candidate trained on a fresh snapshot goes out as a canary",
        expected="promoted",
        started_at=world.elapsed(),
    )
    say.step("training a candidate on a fresh data snapshot")
    summary = world.trainer.run(
        RunRequest(seed=world.config.good_seed, reason="demo scenario 2: a fresh data snapshot"),
        on_stage=lambda stage, status, detail: say.step(f"pipeline: {stage} {status} {detail}"),
    )
    version, problem = _registered(summary, say)
    result.evidence["pipeline"] = _pipeline_evidence(summary)
    if version is None:
        result.outcome, result.why, result.ended_at = "not-registered", problem, world.elapsed()
        return result
    report = _run_canary(world, result, version, say)
    result.ended_at = world.elapsed()
    _say_verdict(say, result, report)
    return result


def champion_drift(world: DemoWorld, say: Narrator) -> ScenarioResult:
    """Scenario 3: input drift on the champion raises an alert and a retrain, never a rollback."""
    config = world.config
    result = ScenarioResult(
        "champion-drift",
        "input drift (credit_score down one standard deviation) hits the champion",
        expected="alert+retrain",
        started_at=world.elapsed(),
    )
    before = world.registry.state()
    last_event = max((e.id for e in world.registry.history(limit=1)), default=0)
    say.step("switching the traffic to covariate-shift")
    world.start_traffic("covariate-shift", config.drift_magnitude)
    first = world.wait_for_traffic(config.startup_timeout_s)
    since = world.report_count()
    result.canary_at = world.elapsed(first)
    say.say(
        f"  traffic: credit_score shifted down, all of it served by champion v{before.champion}"
    )

    def flagged() -> tuple[CycleReport, DriftReport] | None:
        for report in world.reports(since):
            for check in report.drift:
                if check.variant == CHAMPION and check.version == before.champion:
                    say.step(f"drift job on champion v{check.version}: {check.status}: "
                             f"{check.reason}")  # fmt: skip
                    if check.status == "drift":
                        return report, check
        return None

    found: tuple[CycleReport, DriftReport] | None = None
    try:
        found = world.wait(flagged, config.scenario_timeout_s, "drift flagged on the champion")
    except DemoTimeout:
        found = None
    if found is not None:
        cycle, drift = found
        result.verdict_at = world.elapsed(cycle.finished_at)
        result.seconds_to_verdict = cycle.finished_at.timestamp() - first
        say.step(f"drift flagged; watching {config.drift_hold_s:g} s more: nothing may move")
        _hold(world, config.drift_hold_s)
        result.evidence.update(_drift_evidence(world, drift))
    world.stop_traffic()
    moves = [e for e in world.registry.history(limit=50) if e.id > last_event and e.action in MOVES]
    after = world.registry.state()
    outcome, passed, why = assess_drift(
        None if found is None else found[1],
        moves,
        champion_before=before.champion,
        champion_after=after.champion,
    )
    result.outcome, result.passed, result.why = outcome, passed, why
    result.evidence["events_while_drifting"] = [e.describe() for e in moves]
    result.evidence["registry_after"] = {"champion": after.champion, "challenger": after.challenger,
                                         "canary_weight": after.canary_weight}  # fmt: skip
    result.ended_at = world.elapsed()
    mark = "[green]as expected[/]" if passed else "[red]NOT as expected[/]"
    say.say(f"  verdict: {outcome} ({mark}): {why}")
    return result


def _hold(world: DemoWorld, seconds: float) -> None:
    """Keep watching for ``seconds`` (the controller and traffic keep running meanwhile)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        world.check_children()
        time.sleep(0.25)


def _drift_evidence(world: DemoWorld, drift: DriftReport) -> dict[str, Any]:
    decisions = world.paths.store / "monitor" / "retrain-decisions.json"
    at = (drift.retrain or {}).get("at")
    recorded: list[dict[str, Any]] = []
    if decisions.exists():
        recorded = json.loads(decisions.read_text(encoding="utf-8")).get("decisions") or []
    return {
        "drift_check": {
            "version": drift.version,
            "rows": drift.rows,
            "share_drifted": round(drift.share_drifted, 4),
            "drifted_features": list(drift.drifted_features),
            "reason": drift.reason,
        },
        "recommendation": dict(drift.recommendation or {}),
        "retrain_decision": dict(drift.retrain or {}),
        "retrain_decisions_file": str(decisions) if decisions.exists() else None,
        # The trigger's own durable record of this decision (later checks add cool-down ones).
        "retrain_decision_recorded": next((d for d in recorded if d.get("at") == at), None),
        "retrain_decisions_recorded": len(recorded),
        "drift_report": drift.report_path,
    }


def _canary_drift(world: DemoWorld, version: int) -> dict[str, Any] | None:
    """The canary's own input drift, if the drift job saw it before the verdict (context)."""
    for report in world.reports():
        for check in report.drift:
            if check.variant == CANARY and check.version == version and check.status == "drift":
                return {"drifted_features": list(check.drifted_features), "reason": check.reason,
                        "recommendation": dict(check.recommendation or {})}  # fmt: skip
    return None


def _say_verdict(say: Narrator, result: ScenarioResult, report: CanaryReport | None) -> None:
    mark = "[green]as expected[/]" if result.passed else "[red]NOT as expected[/]"
    took = (
        f" {result.seconds_to_verdict:.1f} s after the canary started"
        if result.seconds_to_verdict is not None
        else ""
    )
    say.say(f"  verdict: {result.outcome}{took} ({mark}): {result.why}")
    if report is not None:
        reports = result.evidence.get("drift_reports") or []
        if reports:
            say.say(f"  report: {Path(reports[-1]).name}")
