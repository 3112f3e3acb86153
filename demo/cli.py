"""``mlplat demo``: run the closed loop (:func:`demo.run.run_demo`) and print the summary.

This module stays light: ``mlplat --help`` finds the command without loading the platform, which
the command body imports when it runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from rich.console import Console

from demo.config import DemoConfigError, load_demo_config

__all__ = ["demo"]


@click.command()
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-output"),
    show_default=True, help="Where the demo writes its store, reports, timeline and summary.json.",
)  # fmt: skip
@click.option(
    "--json", "as_json", is_flag=True, help="Print summary.json on stdout (progress on stderr)."
)
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None, help="YAML file of DemoConfig fields to override (see demo/config.py).",
)  # fmt: skip
def demo(out: Path, as_json: bool, config_path: Path | None) -> None:
    """Run the closed loop end to end: skew rolled back, good canary promoted, drift alerted."""
    # Here, not at the top: the run loads MLflow, the service's and the controller's code.
    from demo.run import run_demo
    from demo.summary import summary_table

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    console = Console(stderr=as_json, highlight=False)
    try:
        config = load_demo_config(config_path)
    except DemoConfigError as exc:
        raise click.ClickException(str(exc)) from None
    _require_the_credit_contract()
    try:
        payload = run_demo(config, out, console)
    except FileExistsError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted; everything was stopped. "
            f"Partial summary: {out / 'summary.json'}[/]"
        )
        raise SystemExit(130) from None
    console.print(summary_table(payload))
    if payload.get("error"):
        console.print(f"[red]the demo stopped early: {payload['error']}[/]")
    files = payload["files"]
    console.print(
        f"finished in {payload['seconds']:.0f} s. summary {files['summary']}, timeline "
        f"{files.get('timeline') or '(not drawn)'}, {len(files['reports'])} HTML report(s) in "
        f"{out / 'reports'}, logs in {files['logs']}"
    )
    if as_json:
        click.echo(json.dumps(payload, indent=2, default=str))
    if not payload["ok"]:
        raise SystemExit(1)


def _require_the_credit_contract() -> None:
    """Refuse, in one line, a contract the demo's generated world does not produce.

    The demo's scenarios (an annualised ``debt_to_income``, a credit-score drift) and its
    traffic are the credit example's; on another contract it would fail midway.
    """
    import features
    from pipeline.table_sources import SourceError, open_source

    try:
        open_source(None, None, features.current(), n_rows=10, seed=0)
    except SourceError:
        raise click.ClickException(
            f"mlplat demo runs the credit example only, and {features.CONTRACT_ENV} names "
            f"{features.contract_path()}; unset it to run the demo. Your own data goes through "
            "init, pipeline run --data, serve, deploy canary and traffic --data (docs/reuse.md)"
        ) from None
