"""``mlplat demo``: the delivery loop end to end on embedded defaults (SQLite MLflow, local files).

This first version walks the pipeline half of the loop: a champion is bootstrapped, a second data
snapshot yields a challenger only because it passes the gate, a broken dataset is stopped by the
validation gate, and a defective candidate is stopped by the promotion gate. The serving and
monitoring half (canary, judge, automatic rollback) extends this command as those parts land.

The demo runs in its own store under ``--out`` (wiped at the start) so it is repeatable and never
touches the stores of ``./.mlplat``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table


@dataclass(frozen=True)
class DemoStep:
    """One pipeline run of the demo and the outcome it must have."""

    title: str
    seed: int
    scenario: str | None
    expected: str


STEPS: tuple[DemoStep, ...] = (
    DemoStep("bootstrap a champion on an empty registry", 42, None, "registered"),
    DemoStep("new data snapshot: challenger only if it passes the gate", 7, None, "registered"),
    DemoStep("broken data (null-spike): stopped by validation", 11, "null-spike", "invalid-data"),
    DemoStep("defective labels (label-noise): stopped by the gate", 13, "label-noise", "rejected"),
)  # fmt: skip


def run_demo(out: Path, console: Console) -> dict[str, Any]:
    """Run every demo step in a fresh store under ``out`` and return the summary."""
    from ci.runner import run_from_settings
    from ci.stages import RunRequest
    from registry import RegistrySettings, open_registry

    store = out / "store"
    if store.exists():
        shutil.rmtree(store)
    settings = RegistrySettings(home=store, actor="mlplat-demo")
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    for number, step in enumerate(STEPS, start=1):
        console.rule(f"[bold]step {number}/{len(STEPS)}[/]: {step.title}")
        request = RunRequest(
            seed=step.seed, scenario=step.scenario, trigger="manual", reason=f"demo: {step.title}"
        )
        summary = run_from_settings(request, settings=settings)
        results.append(
            {
                "step": step.title,
                "scenario": step.scenario,
                "seed": step.seed,
                "expected": step.expected,
                "outcome": summary.outcome,
                "as_expected": summary.outcome == step.expected,
                "model_version": summary.model_version,
                "alias": summary.alias,
                "failed_stage": summary.failed_stage,
                "reasons": summary.reasons,
            }
        )
    registry = open_registry(settings)
    state = registry.state()
    events = [event.describe() for event in reversed(registry.history(limit=50))]
    payload = {
        "ok": all(r["as_expected"] for r in results),
        "seconds": round(time.perf_counter() - started, 1),
        "store": str(store),
        "tracking_uri": settings.tracking_uri,
        "steps": results,
        "deployment": {"champion": state.champion, "challenger": state.challenger},
        "events": events,
    }
    summary_path = out / "summary.json"
    tmp = summary_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(summary_path)
    return payload


def _table(payload: dict[str, Any]) -> Table:
    table = Table(title="demo summary", title_justify="left")
    for column in ("step", "outcome", "registered", "why"):
        table.add_column(column, overflow="fold")
    for row in payload["steps"]:
        mark = "[green]✓[/]" if row["as_expected"] else "[red]✗ unexpected[/]"
        registered = f"v{row['model_version']} → {row['alias']}" if row["model_version"] else "-"
        why = "; ".join(row["reasons"][:3]) if row["reasons"] else ""
        table.add_row(row["step"], f"{mark} {row['outcome']}", registered, why)
    return table


@click.command()
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-output"),
    show_default=True, help="Where the demo writes its store and summary.json.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def demo(out: Path, as_json: bool) -> None:
    """Run the delivery loop end to end on embedded defaults and say what happened."""
    console = Console(stderr=as_json, highlight=False)
    out.mkdir(parents=True, exist_ok=True)
    payload = run_demo(out, console)
    if as_json:
        click.echo(json.dumps(payload, indent=2, default=str))
    else:
        console.print(_table(payload))
        console.print("deployment events, oldest first:")
        for line in payload["events"]:
            console.print(f"  {line}")
        console.print(
            f"finished in {payload['seconds']}s; summary in {out / 'summary.json'}, "
            f"MLflow store {payload['tracking_uri']} "
            f"(browse it: mlflow ui --backend-store-uri {payload['tracking_uri']})"
        )
    if not payload["ok"]:
        raise SystemExit(1)
