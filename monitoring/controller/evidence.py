"""What the judge weighs about the live canary: the inference log's rows, or the counters.

The log says most (time-matched strata, routing-key clusters, slices, a baseline before the
canary: ``monitoring/judge/log_evidence.py``). When it cannot — a table an older service
created, a log lagging the counters — the metrics source's cumulative counters serve instead
(one stratum of independent requests, ``monitoring/judge/counters.py``), and the event says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from interfaces.routing import CANARY, CHAMPION, Variant
from monitoring.controller.reports import Cycle
from monitoring.judge import CanaryObservation
from monitoring.judge.counters import VariantCounts, build_observation, tail_threshold
from monitoring.judge.evidence import CanaryEvidence
from monitoring.judge.log_evidence import (
    BaselineRows,
    LogEvidenceParams,
    UnusableLog,
    build_evidence,
    prepare_baseline,
)
from monitoring.settings import MonitorSettings
from monitoring.sources.base import JudgeLogSource, LogSource

__all__ = ["LiveEvidence"]

_LOG_COVERAGE: Final = 0.8
"""Share of the counted canary rows the inference log must hold to be judged from."""

_LOG_COVERAGE_MIN_ROWS: Final = 50
"""Counted canary rows below which the log's coverage is not checked (flush lag dominates)."""


class LiveEvidence:
    """Gathers the judge's evidence about the live canary, the log's baseline read once.

    Args:
        log_source: Scores, labels and the judge's rows from the inference log.
        settings: The judge window and the baseline period.
    """

    def __init__(self, log_source: LogSource, settings: MonitorSettings) -> None:
        self.log_source = log_source
        self.settings = settings
        # The baseline of the live canary, salted once: (champion, canary, started) -> rows.
        self._baseline: tuple[tuple[int, int, datetime], BaselineRows] | None = None

    def gather(
        self,
        champion: int,
        version: int,
        started: datetime,
        window: int,
        counts: Mapping[Variant, VariantCounts],
        cycle: Cycle,
    ) -> tuple[CanaryEvidence | CanaryObservation, str]:
        """What the judge weighs, from the log when it can say it, else the counters; and which.

        Returns:
            The evidence (or the counters' observation) and where it came from, in words.

        Raises:
            SourceUnavailable: A source cannot be read (the caller holds).
        """
        now = cycle.started_at
        evidence, why = self._log_evidence(champion, version, started, now, counts)
        if evidence is not None:
            return evidence, "inference log"
        pairs: tuple[tuple[Variant, int], ...] = ((CHAMPION, champion), (CANARY, version))
        scores = {v: self.log_source.scores(v, n, started, now) for v, n in pairs}
        labelled = {v: self.log_source.labelled(v, n, started, now) for v, n in pairs}
        observation = build_observation(window, counts, scores, labelled)
        cycle.note(f"canary {version} judged from cumulative counters: {why}")
        return observation, f"cumulative counters: {why}"

    def _log_evidence(
        self,
        champion: int,
        version: int,
        started: datetime,
        now: datetime,
        counts: Mapping[Variant, VariantCounts],
    ) -> tuple[CanaryEvidence | None, str]:
        """The judge's evidence from the inference log, or None and why the counters serve.

        Raises:
            SourceUnavailable: The log cannot be read (the caller holds).
        """
        source = self.log_source
        if not isinstance(source, JudgeLogSource):
            return None, f"{source!r} keeps no per-row routing data"
        inputs = source.judge_inputs(started, now, self.settings.baseline_seconds)
        if inputs is None:
            return None, "the inference log's table predates per-row routing data"
        rows = inputs.rows
        logged = int(((rows["variant"] == CANARY) & (rows["model_version"] == version)).sum())
        counted = counts[CANARY].requests
        if counted >= _LOG_COVERAGE_MIN_ROWS and logged < _LOG_COVERAGE * counted:
            return None, (
                f"the inference log holds {logged} of the {counted} canary rows the metrics "
                "counted (writes lagging or lost)"
            )
        params = LogEvidenceParams(window_seconds=self.settings.judge_window_seconds)
        key = (champion, version, started)
        if self._baseline is None or self._baseline[0] != key:
            baseline = prepare_baseline(inputs.baseline, champion=champion, canary=version)
            self._baseline = (key, baseline)
        try:
            evidence = build_evidence(
                rows, inputs.labels, self._baseline[1],
                champion=champion, canary=version,
                started=started.timestamp(), now=now.timestamp(), params=params,
                tail_threshold_s=tail_threshold(counts[CHAMPION]),
            )  # fmt: skip
        except UnusableLog as exc:
            return None, str(exc)
        return evidence, ""
