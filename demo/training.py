"""Training for the demo: the CI pipeline stage, and one upstream defect it cannot see.

:meth:`DemoTrainer.run` is the real CI stage (``ci/stages.py::run_pipeline``) on the generated
credit data: generate, validate, train, evaluate, gate, register.
:meth:`DemoTrainer.run_with_upstream` is the same stage on a snapshot that went through an
upstream change first — the training extract of a feature pipeline (:class:`UpstreamChanged`, a
:class:`~pipeline.sources.DataSource` whose lineage names the change). Both return the stage's
:class:`~ci.stages.RunSummary`; only the rows differ.

The upstream defect of scenario 1 is :func:`annualised_debt_to_income`: the training extract
computes ``debt_to_income`` as monthly debt over *annual* income, a twelfth of what the contract
means and of what the service receives. Every value stays inside the contract's range, so
validation passes; the holdout has the same units, so the candidate is fairly better than the
champion scored on the same rows, and the promotion gate passes too. Only live traffic, in the
contract's units, shows the defect: the candidate reads every applicant as twelve times as
indebted as it learned, and scores the same traffic very differently (a PSI near 0.6 against the
champion, log loss about 0.05 nats worse on delayed labels).

Why not ``serving-skew`` (``annual_income`` in thousands of USD), the repository's named skew?
Measured on this generator, a candidate trained on incomes in thousands is only 0.014 nats worse
on live traffic with a score PSI of 0.11, inside the judge's guardrail: the real judge would
*promote* it. Income enters the risk only through the loan-to-income ratio; debt load enters
directly. That subtle skew is what the offline gate and the canary both miss — worth knowing,
but not a demo of a rollback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import pandas as pd

from ci.runner import open_experiment
from ci.stages import Reporter, RunRequest, RunSummary, run_pipeline
from interfaces.tags import TAG_PREFIX
from pipeline import DataSource, GeneratedData, PipelineConfig, generate
from registry import ModelRegistry, RegistrySettings

__all__ = [
    "DTI_COLUMN",
    "UPSTREAM_TAG",
    "DemoTrainer",
    "Upstream",
    "UpstreamChanged",
    "annualised_debt_to_income",
]

DTI_COLUMN = "debt_to_income"
MONTHS_PER_YEAR = 12.0
UPSTREAM_TAG: Final = TAG_PREFIX + "upstream"
"""Run and model version tag: the upstream change the training rows went through."""

Upstream = Callable[[pd.DataFrame], pd.DataFrame]
"""A change made to a snapshot before the pipeline sees it (a feature-pipeline change)."""


def annualised_debt_to_income(frame: pd.DataFrame) -> pd.DataFrame:
    """The training extract's bug: monthly debt over *annual* income (a twelfth of the ratio).

    Returns:
        A copy of ``frame``; nulls stay null.
    """
    out = frame.copy()
    out[DTI_COLUMN] = out[DTI_COLUMN].astype(float) / MONTHS_PER_YEAR
    return out


@dataclass(frozen=True)
class UpstreamChanged:
    """A generated snapshot after an upstream change, as the pipeline receives it.

    Attributes:
        n_rows: Rows generated.
        seed: Seed of the generator.
        upstream: The change applied to the snapshot.
        upstream_name: Its name, kept in the run's tags and the version's lineage.
    """

    n_rows: int
    seed: int
    upstream: Upstream
    upstream_name: str

    def load(self) -> pd.DataFrame:
        """The generated snapshot with the change applied."""
        return self.upstream(generate(self.n_rows, self.seed))

    @property
    def description(self) -> str:
        """Seed and change."""
        return f"generated with seed {self.seed}, then {self.upstream_name}"

    @property
    def lineage(self) -> Mapping[str, str]:
        """The change's name under :data:`UPSTREAM_TAG`."""
        return {UPSTREAM_TAG: self.upstream_name}


@dataclass
class DemoTrainer:
    """Runs the CI stage against the demo's store.

    Args:
        registry: Where candidates are registered.
        settings: The registry's settings (tracking URI, experiment, artifact root).
        config: The pipeline's parameters.
    """

    registry: ModelRegistry
    settings: RegistrySettings
    config: PipelineConfig

    def run(self, request: RunRequest, on_stage: Reporter | None = None) -> RunSummary:
        """The CI stage, unchanged (``ci/stages.py::run_pipeline``), on generated data."""
        return self._stage(request, GeneratedData(self.config.data.n_rows, request.seed), on_stage)

    def run_with_upstream(
        self,
        request: RunRequest,
        upstream: Upstream,
        upstream_name: str,
        on_stage: Reporter | None = None,
    ) -> RunSummary:
        """The CI stage on a snapshot changed by ``upstream`` before validation.

        Registers the candidate as ``challenger`` when every gate passes (a champion must
        exist: this is never a bootstrap).

        Args:
            request: Seed and reason of the run (``scenario`` must be ``None``).
            upstream: The change applied to the generated snapshot.
            upstream_name: Its name, kept in the run's tags and the version's lineage.
            on_stage: Progress callback ``(stage, status, detail)``.

        Raises:
            ValueError: If ``request`` names a scenario, or there is no champion yet.
        """
        if request.scenario is not None:
            raise ValueError("scenario: run_with_upstream applies its own change; give none")
        self.registry.ensure_model()
        if self.registry.state().champion is None:
            raise ValueError("a candidate needs a champion to be compared with; train one first")
        source = UpstreamChanged(self.config.data.n_rows, request.seed, upstream, upstream_name)
        return self._stage(request, source, on_stage)

    def _stage(
        self, request: RunRequest, data: DataSource, on_stage: Reporter | None
    ) -> RunSummary:
        return run_pipeline(
            request,
            data,
            config=self.config,
            registry=self.registry,
            tracking_uri=self.settings.tracking_uri,
            experiment_id=open_experiment(self.settings),
            on_stage=on_stage,
        )
