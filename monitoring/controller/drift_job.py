"""The drift job: each variant's recent traffic against its version's reference sample.

Every ``drift_interval_seconds`` the champion's window of the inference log (and an observed
canary's) is checked (``monitoring/drift/``); the scores are exported as the serving drift
gauges, and input drift on the champion asks the retrain trigger — never for a rollback
(``monitoring/drift/policy.py::recommend``). The HTML report of a champion's drift episode is
written when it starts, and a canary's whole window when its verdict was acted on, attached to
its training run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd

from interfaces.routing import CANARY, CHAMPION, Variant
from monitoring.controller.reports import CanaryReport, Cycle, DriftReport
from monitoring.controller.retrain import RetrainDecision, RetrainRequest, RetrainTrigger
from monitoring.drift import DriftDetector, DriftError, DriftResult, recommend
from monitoring.metrics import ControllerMetrics
from monitoring.settings import MonitorSettings
from monitoring.sources.base import LogSource, ReferenceNotFound, SourceUnavailable
from registry import DeploymentState

__all__ = ["DriftJob"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _ReportJob:
    variant: Variant
    version: int
    start: datetime
    end: datetime
    attach: bool
    why: str


class DriftJob:
    """Runs the drift checks, asks the retrain trigger, and writes the HTML reports.

    Args:
        model_name: The registered model (names the report files).
        log_source: Windows of logged rows.
        drift_detector_factory: Builds the drift detector of a model version (from the reference
            sample logged with it); called once per version, the result is cached.
        metrics: Where the drift scores are published.
        settings: Intervals, windows and where reports go.
        retrain_trigger: Asked when the champion's inputs drift; ``None``: record nothing.
        attach_report: Attaches a canary's drift report to its version's run (MLflow);
            returns where it went. ``None``: reports stay on disk.
    """

    def __init__(
        self,
        model_name: str,
        log_source: LogSource,
        drift_detector_factory: Callable[[int], DriftDetector],
        metrics: ControllerMetrics,
        settings: MonitorSettings,
        retrain_trigger: RetrainTrigger | None,
        attach_report: Callable[[int, Path], str] | None,
    ) -> None:
        self.model_name = model_name
        self.log_source = log_source
        self.drift_detector_factory = drift_detector_factory
        self.metrics = metrics
        self.settings = settings
        self.retrain_trigger = retrain_trigger
        self.attach_report = attach_report
        self._detectors: dict[int, DriftDetector] = {}
        self._drifting: dict[tuple[Variant, int], bool] = {}
        self._next_drift_at: datetime | None = None
        self._reports: list[_ReportJob] = []
        self._reports_lock = threading.Lock()

    def queue_canary_report(self, version: int, start: datetime, end: datetime, why: str) -> None:
        """Write canary ``version``'s report over ``[start, end]`` next cycle, and attach it."""
        with self._reports_lock:
            self._reports.append(_ReportJob(CANARY, version, start, end, True, why))

    def due(self, now: datetime) -> bool:
        """Whether the drift job runs this cycle (every ``drift_interval_seconds``)."""
        return self._next_drift_at is None or now >= self._next_drift_at

    def run(
        self, state: DeploymentState, canary: CanaryReport | None, cycle: Cycle
    ) -> tuple[DriftReport, ...]:
        """Check the champion's recent traffic, and the observed canary's, against references."""
        now = cycle.started_at
        self._next_drift_at = now + timedelta(seconds=self.settings.drift_interval_seconds)
        earliest = now - timedelta(seconds=self.settings.drift_window_seconds)
        targets: list[tuple[Variant, int, datetime]] = []
        if state.champion is not None:
            targets.append((CHAMPION, state.champion, earliest))
        if canary is not None and canary.state == "observing" and canary.started_at is not None:
            targets.append((CANARY, canary.version, max(earliest, canary.started_at)))
        return tuple(self._check(v, n, start, cycle) for v, n, start in targets)

    def _detector(self, version: int) -> DriftDetector:
        detector = self._detectors.get(version)
        if detector is None:
            detector = self._detectors[version] = self.drift_detector_factory(version)
        return detector

    def _check(self, variant: Variant, version: int, start: datetime, cycle: Cycle) -> DriftReport:
        now = cycle.started_at
        try:
            frame = self.log_source.window(
                variant, version, start, now, self.settings.drift_max_rows
            )
        except SourceUnavailable as exc:
            cycle.hold(exc.hold_reason, f"drift check of {variant} {version}: {exc}")
            return DriftReport(variant, version, "error", 0, str(exc))
        if len(frame) < self.settings.drift.min_window_rows:
            # Too little traffic to judge; no need to load the reference either.
            return DriftReport(
                variant, version, "insufficient-data", len(frame),
                f"{len(frame)} rows, fewer than the "
                f"{self.settings.drift.min_window_rows} a check needs",
            )  # fmt: skip
        try:
            detector = self._detector(version)
            result = detector.check(frame)
        except (ReferenceNotFound, SourceUnavailable, DriftError) as exc:
            logger.warning("drift check of %s %d failed: %s", variant, version, exc)
            return DriftReport(variant, version, "error", len(frame), str(exc))
        except Exception as exc:
            # The drift job informs; it must never stop the loop that rolls canaries back.
            logger.exception("drift check of %s %d failed unexpectedly", variant, version)
            return DriftReport(
                variant, version, "error", len(frame), f"{type(exc).__name__}: {exc}"
            )
        self.metrics.record_drift(
            variant, str(version), result.scores(), result.share_drifted, now.timestamp()
        )
        advice = recommend(result, variant)
        episode = (variant, version)
        starting = result.status == "drift" and not self._drifting.get(episode, False)
        self._drifting[episode] = result.status == "drift"
        path: Path | None = None
        if variant == CHAMPION and advice.alert and starting:
            path = self._report(detector, frame, variant, version, start, now, cycle)
        retrain: RetrainDecision | None = None
        if variant == CHAMPION and advice.retrain:
            retrain = self._ask_retrain(version, result, advice.severity, advice.reasons, path, now)
        return DriftReport(
            variant, version, result.status, result.window_rows, result.reason,
            result.share_drifted, result.drifted_features, advice.to_dict(),
            None if path is None else str(path), None if retrain is None else retrain.to_dict(),
        )  # fmt: skip

    def _ask_retrain(
        self,
        version: int,
        result: DriftResult,
        severity: str,
        reasons: Sequence[str],
        path: Path | None,
        now: datetime,
    ) -> RetrainDecision:
        request = RetrainRequest(
            model_version=version,
            drift_share=result.share_drifted,
            drifted_features=result.drifted_features,
            severity=severity,
            reasons=tuple(reasons),
            evidence=None if path is None else str(path),
            at=now,
        )
        if self.retrain_trigger is None:
            return RetrainDecision(False, "no retrain trigger is configured; drift recorded only")
        try:
            decision = self.retrain_trigger(request)
        except Exception as exc:
            logger.exception("retrain trigger for champion %d failed", version)
            return RetrainDecision(
                False, f"the retrain trigger failed: {type(exc).__name__}: {exc}"
            )
        if decision.fire:
            self.metrics.record_retrain_trigger()
        logger.info("retrain trigger for champion %d: %s", version, decision.reason)
        return decision

    def _report(
        self,
        detector: DriftDetector,
        frame: pd.DataFrame,
        variant: Variant,
        version: int,
        start: datetime,
        end: datetime,
        cycle: Cycle,
    ) -> Path | None:
        name = f"{self.model_name}-v{version}-{variant}-{end:%Y%m%dT%H%M%SZ}.html"
        path = self.settings.resolved_report_dir / name
        title = f"{variant} v{version}, {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC"
        try:
            detector.write_html_report(frame, path, title=title)
        except Exception as exc:  # a report is evidence, not a decision: never fail the cycle
            logger.warning("drift report %s not written: %s", path, exc)
            cycle.note(f"drift report of {variant} {version} not written: {exc}")
            return None
        cycle.note(f"drift report of {variant} {version} written to {path}")
        return path

    def write_reports(self, cycle: Cycle) -> None:
        """Write the reports queued since the last cycle; attach a canary's to its run."""
        with self._reports_lock:
            jobs, self._reports = self._reports, []
        for job in jobs:
            try:
                frame = self.log_source.window(
                    job.variant, job.version, job.start, job.end, self.settings.drift_max_rows
                )
                detector = self._detector(job.version)
            except Exception as exc:  # evidence, not a decision: note it and carry on
                cycle.note(f"no drift report for {job.variant} {job.version} ({job.why}): {exc}")
                continue
            path = self._report(
                detector, frame, job.variant, job.version, job.start, job.end, cycle
            )
            if path is None or not job.attach or self.attach_report is None:
                continue
            try:
                where = self.attach_report(job.version, path)
            except Exception as exc:  # the report stays on disk; the note says where
                cycle.note(f"drift report of {job.variant} {job.version} not attached: {exc}")
                continue
            cycle.note(f"drift report of {job.variant} {job.version} attached at {where}")
