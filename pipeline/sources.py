"""Where a pipeline run's labelled rows come from.

A run is handed a :class:`DataSource` rather than a frame: the source is loaded inside the run's
``data`` stage (so its time and its failure belong to the run), names itself in the progress line
and records where the rows came from on the MLflow run and on the version it may register. Today
the platform's only source is the seeded generator (:class:`GeneratedData`); a file or a query is
another class with the same three members.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from pipeline.data import generate

__all__ = ["DataSource", "GeneratedData"]


class DataSource(Protocol):
    """Labelled rows shaped like :func:`pipeline.data.generate`'s output, and their origin."""

    def load(self) -> pd.DataFrame:
        """Return the rows (a fresh frame each call; the pipeline does not modify it)."""
        ...

    @property
    def description(self) -> str:
        """What was loaded, after the row count in the progress line (``generated with seed 7``)."""
        ...

    @property
    def lineage(self) -> Mapping[str, str]:
        """Tags naming the rows' origin, kept on the MLflow run and the registered version."""
        ...


@dataclass(frozen=True)
class GeneratedData:
    """The seeded credit-default generator as a source (a new seed stands for a new snapshot).

    Attributes:
        n_rows: Rows to generate.
        seed: Seed of the generator.
    """

    n_rows: int
    seed: int

    def load(self) -> pd.DataFrame:
        """Generate the rows (:func:`pipeline.data.generate`)."""
        return generate(self.n_rows, self.seed)

    @property
    def description(self) -> str:
        """``generated with seed <seed>``."""
        return f"generated with seed {self.seed}"

    @property
    def lineage(self) -> Mapping[str, str]:
        """Nothing beyond the run's own seed tag."""
        return {}
