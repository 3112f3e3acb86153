"""``mlplat init`` and ``mlplat contract check``: start from your own data, check a contract.

``init`` drafts a contract from a CSV or Parquet file and writes it for review; ``contract
check`` validates one. Both answer a mistake (a missing file, a non-binary target, a broken
field) with one message and exit code 1, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd
import yaml

from features.contract import CONTRACT_ENV, contract_path, load_contract
from features.infer import TODO, InferenceError, draft_contract
from features.spec import ContractError

__all__ = ["contract", "init"]

READERS = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".pq": pd.read_parquet}


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, or raise :class:`click.ClickException` saying why not."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise click.ClickException(
            f"{path}: unknown file type {path.suffix!r}; give a .csv or .parquet file"
        )
    try:
        return reader(path)
    except FileNotFoundError:
        raise click.ClickException(f"{path} does not exist") from None
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise click.ClickException(f"{path} cannot be read as {path.suffix}: {exc}") from None


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--target", required=True, help="The 0/1 label column (1 = what the score predicts).")
@click.option("--segment", default=None, help="A categorical column to slice evaluation by.")
@click.option("--entity-id", default=None, help="A routing-key column (never a model input).")
@click.option("--drop", multiple=True, help="A column to leave out (repeatable): ids, leaks.")
@click.option("--name", default=None, help="The contract's name (default: the file's stem).")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("contract.yml"), show_default=True
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def init(
    data: Path,
    target: str,
    segment: str | None,
    entity_id: str | None,
    drop: tuple[str, ...],
    name: str | None,
    out: Path,
    force: bool,
) -> None:
    """Draft a feature contract from DATA (CSV or Parquet) and write it for review."""
    if out.exists() and not force:
        raise click.ClickException(f"{out} exists; choose another --out or pass --force")
    frame = read_table(data)
    try:
        draft = draft_contract(
            frame, target, name=name or data.stem, entity_id=entity_id, segment=segment,
            drop=drop,
        )  # fmt: skip
    except InferenceError as exc:
        raise click.ClickException(f"{data}: {exc}") from None
    header = (
        f"# Drafted by `mlplat init` from {data.name} ({len(frame)} rows). Review it: fill in\n"
        f"# every {TODO}, widen bounds to what is valid, then point {CONTRACT_ENV} at this file.\n"
    )
    # Written beside the target, then renamed: a failed write never leaves half a contract.
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(header + yaml.safe_dump(draft.contract, sort_keys=False), encoding="utf-8")
    partial.replace(out)
    try:
        load_contract(out)
    except ContractError as exc:  # a draft the schema refuses is a bug of the drafter: say so
        raise click.ClickException(f"the draft does not pass its own schema: {exc}") from None
    features = draft.contract["features"]
    click.echo(f"wrote {out}: {len(features)} features, target {target!r}")
    click.echo("check before use:")
    for note in draft.notes:
        click.echo(f"  - {note}")
    click.echo(f"then: export {CONTRACT_ENV}={out.resolve()}")
    click.echo(f"      mlplat pipeline check-config --data {data}  # size vs. the gates")
    click.echo(f"      mlplat pipeline run --data {data}")


@click.group()
def contract() -> None:
    """Check the feature contract."""


@contract.command()
@click.argument("path", type=click.Path(path_type=Path), required=False)
def check(path: Path | None) -> None:
    """Validate the contract at PATH (default: $MLPLAT_CONTRACT or the credit example)."""
    source = path or contract_path()
    try:
        checked = load_contract(source)
    except ContractError as exc:
        raise click.ClickException(str(exc)) from None
    todos = ["target.positive"] if checked.positive == TODO else []
    todos += [f.name for f in checked.features if TODO in (f.description, getattr(f, "unit", None))]
    click.echo(
        f"{source}: valid — {len(checked.features)} features, target {checked.target!r}, "
        f"entity id {checked.entity_id!r}, segment {checked.segment!r}"
    )
    if todos:
        more = f" and {len(todos) - 8} more" if len(todos) > 8 else ""
        click.echo(f"still {TODO}: {', '.join(todos[:8])}{more}")
