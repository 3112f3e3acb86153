"""The ``mlplat`` console script.

Sub-commands import their component lazily so ``mlplat --help`` answers at once instead of paying
for MLflow, Great Expectations and Evidently imports it does not need.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

# name -> (module, attribute, one-line help); help lives here so listing commands imports nothing.
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("features.cli", "init", "Draft a feature contract from your CSV or Parquet file."),
    "contract": ("features.cli", "contract", "Check the feature contract."),
    "pipeline": ("ci.cli", "pipeline", "Validate, train, evaluate, gate and register a model."),
    "deploy": (
        "ci.deploy_cli",
        "deploy",
        "Move models between deployment states (canary, promote).",
    ),
    "serve": ("serving.cli", "serve", "Run the FastAPI inference service."),
    "monitor": ("mlplat.monitor", "monitor", "Run the drift checks, canary judge and controller."),
    "traffic": ("mlplat.traffic", "traffic", "Send generated requests and delayed labels."),
    "demo": ("demo.cli", "demo", "Run the closed-loop demo end to end."),
    "bench": ("benchmarks.cli", "bench", "Run a benchmark and write its figures to a file."),
    "db": ("mlplat.db", "db", "Migrate the events store and the inference log (Alembic)."),
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return the sub-command names that are installed."""
        return [name for name, (module, _, _) in _COMMANDS.items() if _importable(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """Import and return one sub-command."""
        if cmd_name not in _COMMANDS:
            return None
        module, attribute, _ = _COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}.{attribute} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the sub-command; a broken feature contract is one message and exit code 1.

        The contract is read where its names are first used (importing a command or running
        it), so its error is caught around both. Imported here, not at the top, so that
        ``mlplat --help`` loads nothing.
        """
        from features.spec import ContractError

        try:
            return super().invoke(ctx)
        except ContractError as exc:
            raise click.ClickException(str(exc)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List sub-commands with their help, without importing them."""
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _importable(module: str) -> bool:
    # Only the top-level package is looked up: finding ``ci.cli`` would import ``ci`` (and
    # MLflow with it) just to list the commands.
    import importlib.util

    return importlib.util.find_spec(module.partition(".")[0]) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlplat")
def main(**_: Any) -> None:
    """A reference ML platform: the whole model delivery loop, runnable on one machine.

    Settings come from the environment (MLFLOW_TRACKING_URI and MLPLAT_* variables, see
    .env.example); with none set everything lives under ./.mlplat (SQLite MLflow store, local
    artifacts, SQLite event store).
    """
    # Progress bars from artifact downloads garble the stage lines of a terminal or CI log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
