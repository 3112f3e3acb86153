"""The demo's summary: ``summary.json`` (written atomically) and the final table.

``build_summary`` is pure (results and facts in, a JSON-ready dict out); ``headline`` picks the
few numbers that decided each scenario for the table, so a reader sees *why* without opening the
JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from demo.verdicts import ScenarioResult

__all__ = ["build_summary", "headline", "summary_table"]


def build_summary(
    results: Sequence[ScenarioResult],
    *,
    seconds: float,
    config: Mapping[str, Any],
    setup: Mapping[str, Any],
    deployment: Mapping[str, Any],
    events: Sequence[str],
    files: Mapping[str, Any],
    error: str | None = None,
) -> dict[str, Any]:
    """The summary of one demo run.

    Args:
        results: Every scenario's result, in order (all three, run or not).
        seconds: Wall time of the whole demo.
        config: The demo's knobs.
        setup: How the champion and the services came up.
        deployment: Champion and challenger at the end.
        events: The deployment-event log, oldest first, one line each.
        files: Where the outputs are.
        error: Why the demo stopped early, if it did.

    Returns:
        A JSON-ready dict; ``ok`` is true only when every scenario passed and nothing failed.
    """
    return {
        "ok": error is None and bool(results) and all(r.passed for r in results),
        "error": error,
        "seconds": round(seconds, 1),
        "scenarios": [r.to_dict() for r in results],
        "setup": dict(setup),
        "deployment": dict(deployment),
        "events": list(events),
        "files": dict(files),
        "config": dict(config),
    }


def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value:.{digits}g}"


def headline(scenario: Mapping[str, Any]) -> str:
    """The numbers that decided a scenario, in one or two short lines."""
    evidence = scenario.get("evidence") or {}
    judgement = evidence.get("judgement") or {}
    signals = judgement.get("signals") or {}
    parts: list[str] = []
    if signals:
        shift = signals.get("prediction_distribution") or {}
        quality = signals.get("quality") or {}
        errors = signals.get("error_rate") or {}
        latency = signals.get("latency") or {}
        parts.append(
            f"PSI {_fmt(shift.get('estimate'))} vs threshold {_fmt(shift.get('threshold'))} "
            f"({shift.get('decision', 'n/a')})"
        )
        parts.append(
            f"log loss {'+' if (quality.get('estimate') or 0) >= 0 else ''}"
            f"{_fmt(quality.get('estimate'))} nats on {quality.get('n_canary', 0)} labels "
            f"({quality.get('decision', 'n/a')})"
        )
        parts.append(
            f"errors Δ{_fmt(errors.get('estimate'))} on {errors.get('n_canary', 0)} requests "
            f"({errors.get('decision', 'n/a')}); latency x{_fmt(latency.get('estimate'))} "
            f"({latency.get('decision', 'n/a')})"
        )
    check = evidence.get("drift_check")
    if check:
        decision = evidence.get("retrain_decision") or {}
        parts.append(
            f"drifted: {', '.join(check.get('drifted_features') or []) or 'none'} "
            f"({_fmt(check.get('share_drifted'), 2)} of features, {check.get('rows')} rows)"
        )
        parts.append(
            f"actions: {', '.join((evidence.get('recommendation') or {}).get('actions') or [])}; "
            f"retrain trigger {'fired' if decision.get('fire') else 'did not fire'}"
        )
        parts.append(f"events while drifting: {len(evidence.get('events_while_drifting') or [])}")
    return "\n".join(parts)


def summary_table(payload: Mapping[str, Any]) -> Table:
    """The final table: one row per scenario, with the outcome, the time and the numbers."""
    table = Table(title="mlplat demo: what happened", title_justify="left", show_lines=True)
    table.add_column("scenario", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("verdict after", justify="right", no_wrap=True)
    table.add_column("evidence", overflow="fold", ratio=1)
    for number, row in enumerate(payload.get("scenarios", []), start=1):
        passed = bool(row.get("passed"))
        outcome = (
            f"[green]✓ {row.get('outcome')}[/]"
            if passed
            else (f"[red]✗ {row.get('outcome')}[/]\n[dim]expected {row.get('expected')}[/]")
        )
        seconds = row.get("seconds_to_verdict")
        evidence = headline(row)
        if not passed:
            evidence = f"[red]{row.get('why', '')}[/]\n{evidence}".rstrip()
        table.add_row(
            f"{number} {row.get('key')}",
            outcome,
            "-" if seconds is None else f"{seconds:.1f} s",
            evidence,
        )
    return table
