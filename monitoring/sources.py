"""Where the controller's observations come from: serving metrics, the inference log, MLflow.

Three inputs feed a canary judgement and the drift job:

* **Metrics** (:class:`MetricsSource`): requests, server-side errors and the latency histogram
  of the champion's and the canary's model versions, counted since the canary started. Two
  implementations read the same serving metrics (``serving/metrics.py``):
  :class:`PrometheusSource` asks Prometheus (PromQL ``increase()`` over the canary's lifetime,
  which survives service restarts and controller restarts alike) and :class:`ScrapeSource`
  parses the service's own ``/metrics``, so the controller runs with no Prometheus at all (the
  embedded demo). Client errors (``invalid_input``, ``payload_too_large``) are not counted: a
  bad caller is not the model's fault.
* **The inference log** (:class:`InferenceLogSource`): the scores each variant gave (the
  judge's prediction-distribution guardrail), the delayed labels joined to them (quality),
  windows of logged rows for the drift checks, and every row with its time, routing hash,
  latency, slice and failure (:meth:`InferenceLogSource.judge_inputs`), from which
  ``monitoring/judge/log_evidence.py`` builds the judge's stratified, cluster-robust evidence.
* **MLflow** (:class:`RunArtifacts`): the reference sample logged with each model version's
  training run (``interfaces/tags.py::REFERENCE_ARTIFACT``), and where a canary's drift
  report is attached.

Every source raises :class:`SourceUnavailable`, naming itself and the cause, when it cannot
answer; the controller then holds (never promotes on partial data) and says why.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, Protocol, runtime_checkable

import httpx
import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from interfaces.metric_names import ERRORS_TOTAL, PREDICTION_LATENCY_SECONDS
from interfaces.routing import CANARY, CHAMPION, Variant
from interfaces.tags import REFERENCE_ARTIFACT
from monitoring.judge.counters import (
    LATENCY_BOUNDS,
    SCORE_EDGES,
    SERVER_ERROR_CLASSES,
    VariantCounts,
    build_observation,
    counts_from_buckets,
    tail_threshold,
)
from monitoring.metrics import HOLD_REASONS, HoldReason
from serving.inference_log import InferenceLogReader

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from registry import ModelRegistry

__all__ = [
    "SCORE_EDGES",
    "SERVER_ERROR_CLASSES",
    "InferenceLogSource",
    "JudgeLogInputs",
    "JudgeLogSource",
    "LogSource",
    "MetricsSource",
    "PrometheusSource",
    "ReferenceNotFound",
    "RunArtifacts",
    "ScrapeSource",
    "SourceName",
    "SourceUnavailable",
    "VariantCounts",
    "build_observation",
    "tail_threshold",
]

_SERVER_ERRORS_RE: Final = "|".join(SERVER_ERROR_CLASSES)

SourceName = Literal["prometheus", "scrape", "inference_log", "mlflow"]


class SourceUnavailable(Exception):  # noqa: N818 - reads as a state, like registry's errors
    """A source cannot answer right now; the controller holds instead of judging.

    Attributes:
        source: Which source (``prometheus``, ``scrape``, ``inference_log``, ``mlflow``).
        hold_reason: The ``reason`` label of ``mlplat_controller_holding`` this maps to.
    """

    def __init__(
        self, source: SourceName, message: str, hold_reason: HoldReason = "prometheus_unreachable"
    ) -> None:
        self.source = source
        self.hold_reason: HoldReason = hold_reason
        super().__init__(f"{source}: {message}")


class ReferenceNotFound(LookupError):  # noqa: N818 - same naming as SourceUnavailable
    """A model version has no reference sample to compare its traffic with."""


# --- metrics ------------------------------------------------------------------------------------


class MetricsSource(Protocol):
    """Per-variant counts of the champion's and the canary's versions since a moment."""

    name: SourceName

    def counts(
        self, champion: int, canary: int, since: datetime, at: datetime
    ) -> dict[Variant, VariantCounts]:
        """Return ``{"champion": …, "canary": …}`` counted over ``[since, at]``.

        Args:
            champion: The champion's model version.
            canary: The canary's model version.
            since: When the canary started taking traffic.
            at: Now (the controller's clock).

        Raises:
            SourceUnavailable: If the counts cannot be read or are stale.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _le(value: str) -> float:
    return math.inf if value in {"+Inf", "Inf", "inf"} else float(value)


class PrometheusSource:
    """Counts from the Prometheus HTTP API.

    Counts are ``increase()`` over the canary's lifetime evaluated at ``at``, summed over
    instances and workers, so they need no state in the controller: a restarted controller asks
    the same question and gets the same answer. Before answering, it checks that Prometheus
    still scrapes the service (``up`` of the serving job): a Prometheus that is up but blind
    would report zero errors, which must not read as a healthy canary.

    Args:
        client: An ``httpx.Client`` (tests pass one with a ``MockTransport``).
        base_url: Prometheus, e.g. ``http://127.0.0.1:9090``.
        serving_job: The scrape job of the inference service.
    """

    name: SourceName = "prometheus"

    def __init__(
        self, client: httpx.Client, base_url: str, serving_job: str = "mlplat-serving"
    ) -> None:
        self._client = client
        self.base_url = base_url.rstrip("/")
        self.serving_job = serving_job

    def __repr__(self) -> str:
        return f"PrometheusSource({self.base_url!r})"

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def query(self, promql: str, at: datetime) -> list[dict[str, Any]]:
        """Run an instant query and return its vector.

        Raises:
            SourceUnavailable: If Prometheus cannot be reached or refuses the query.
        """
        try:
            response = self._client.get(
                f"{self.base_url}/api/v1/query",
                params={"query": promql, "time": f"{at.timestamp():.3f}"},
            )
        except httpx.HTTPError as exc:
            raise SourceUnavailable(
                "prometheus", f"cannot reach {self.base_url} ({type(exc).__name__}: {exc})"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            error = body.get("error") or response.text[:200]
            raise SourceUnavailable(
                "prometheus", f"query failed with HTTP {response.status_code}: {error}"
            )
        data = body.get("data") or {}
        if data.get("resultType") != "vector":
            raise SourceUnavailable(
                "prometheus", f"expected a vector, got {data.get('resultType')}"
            )
        result: list[dict[str, Any]] = data.get("result") or []
        return result

    def _check_fresh(self, at: datetime) -> None:
        up = self.query(f'up{{job="{self.serving_job}"}}', at)
        if not up:
            raise SourceUnavailable(
                "prometheus",
                f"no target of job {self.serving_job!r} is scraped: the counts would be empty",
                "stale_metrics",
            )
        if all(float(series["value"][1]) == 0.0 for series in up):
            raise SourceUnavailable(
                "prometheus",
                f"every target of job {self.serving_job!r} is down (up == 0): "
                "its metrics are stale",
                "stale_metrics",
            )

    def counts(
        self, champion: int, canary: int, since: datetime, at: datetime
    ) -> dict[Variant, VariantCounts]:
        """See :meth:`MetricsSource.counts`."""
        self._check_fresh(at)
        span = f"{max(1, math.ceil((at - since).total_seconds()))}s"
        variants = f'variant=~"{CHAMPION}|{CANARY}"'
        errors = self.query(
            f"sum by (variant, model_version) (increase({ERRORS_TOTAL}"
            f'{{{variants}, error_class=~"{_SERVER_ERRORS_RE}"}}[{span}]))',
            at,
        )
        buckets = self.query(
            f"sum by (variant, model_version, le) (increase({PREDICTION_LATENCY_SECONDS}_bucket"
            f"{{{variants}}}[{span}]))",
            at,
        )
        result: dict[Variant, VariantCounts] = {}
        pairs: tuple[tuple[Variant, int], ...] = ((CHAMPION, champion), (CANARY, canary))
        for variant, version in pairs:
            failed = sum(float(s["value"][1]) for s in _of(errors, variant, version))
            by_le = {
                _le(s["metric"].get("le", "+Inf")): float(s["value"][1])
                for s in _of(buckets, variant, version)
            }
            result[variant] = counts_from_buckets(
                failed, [by_le.get(b, 0.0) for b in LATENCY_BOUNDS]
            )
        return result


def _of(vector: list[dict[str, Any]], variant: str, version: int) -> list[dict[str, Any]]:
    """The series of one variant and model version in a query result."""
    return [
        s
        for s in vector
        if s["metric"].get("variant") == variant
        and s["metric"].get("model_version") == str(version)
    ]


@dataclass
class _Counter:
    """One counter series seen through successive scrapes, with resets folded in (like rate())."""

    last: float
    increase: float = 0.0

    def update(self, raw: float) -> None:
        # A drop means the service restarted and the counter began again from zero.
        self.increase += raw - self.last if raw >= self.last else raw
        self.last = raw


_SeriesKey = tuple[str, str, str, str]  # (name, variant, model_version, le or error_class)


@dataclass
class _Epoch:
    """The counters of one canary (its champion, version and start) since the first scrape."""

    key: tuple[int, int, datetime]
    counters: dict[tuple[str, _SeriesKey], _Counter] = field(default_factory=dict)
    scraped: set[str] = field(default_factory=set)


class ScrapeSource:
    """Counts from the inference service's own ``/metrics``, with no Prometheus.

    The service's counters run from its start, not from the canary's, so this source keeps a
    baseline: the first scrape for a (champion, canary, start) triple is the zero, and later
    scrapes count from there (resets of a restarted service are folded in, as ``rate()``
    does). Both variants are counted over the same period, so the comparison stays fair, but a
    controller restarted mid-canary starts counting afresh (its earlier sample is lost, not
    double-counted); with Prometheus nothing is lost.

    Args:
        client: An ``httpx.Client`` (tests pass a ``TestClient`` or a ``MockTransport``).
        urls: The ``/metrics`` URL of every service instance; their counts are summed.
    """

    name: SourceName = "scrape"

    def __init__(self, client: httpx.Client, urls: Sequence[str]) -> None:
        if not urls:
            raise ValueError("urls: give at least one /metrics URL of the inference service")
        self._client = client
        self.urls = tuple(urls)
        self._epoch: _Epoch | None = None

    def __repr__(self) -> str:
        return f"ScrapeSource({list(self.urls)!r})"

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _scrape(self, url: str) -> dict[_SeriesKey, float]:
        try:
            response = self._client.get(url)
            response.raise_for_status()
            families = list(text_string_to_metric_families(response.text))
        except httpx.HTTPError as exc:
            raise SourceUnavailable(
                "scrape", f"cannot scrape {url} ({type(exc).__name__}: {exc})"
            ) from exc
        except ValueError as exc:
            raise SourceUnavailable(
                "scrape", f"{url} did not return Prometheus text: {exc}"
            ) from exc
        values: dict[_SeriesKey, float] = {}
        for family in families:
            for sample in family.samples:
                labels = sample.labels
                variant, version = labels.get("variant", ""), labels.get("model_version", "")
                if sample.name == f"{PREDICTION_LATENCY_SECONDS}_bucket":
                    key = (sample.name, variant, version, labels.get("le", "+Inf"))
                elif sample.name == ERRORS_TOTAL:
                    if labels.get("error_class") not in SERVER_ERROR_CLASSES:
                        continue
                    key = (sample.name, variant, version, labels["error_class"])
                else:
                    continue
                values[key] = values.get(key, 0.0) + float(sample.value)
        return values

    def counts(
        self, champion: int, canary: int, since: datetime, at: datetime
    ) -> dict[Variant, VariantCounts]:
        """See :meth:`MetricsSource.counts` (counted from the first scrape of this canary)."""
        scraped = {url: self._scrape(url) for url in self.urls}
        key = (champion, canary, since)
        if self._epoch is None or self._epoch.key != key:
            self._epoch = _Epoch(key)
        counters = self._epoch.counters
        for url, values in scraped.items():
            baseline = url not in self._epoch.scraped
            for series, raw in values.items():
                counter = counters.get((url, series))
                if counter is not None:
                    counter.update(raw)
                elif baseline:
                    # The first scrape of this canary is its zero.
                    counters[(url, series)] = _Counter(last=raw)
                else:
                    # A series born since (a version's first requests) counts from zero.
                    counters[(url, series)] = _Counter(last=0.0, increase=raw)
            self._epoch.scraped.add(url)
        result: dict[Variant, VariantCounts] = {}
        pairs: tuple[tuple[Variant, str], ...] = ((CHAMPION, str(champion)), (CANARY, str(canary)))
        for variant, version in pairs:
            failed = 0.0
            by_le: dict[float, float] = {}
            for (_, (name, v, mv, extra)), counter in counters.items():
                if v != variant or mv != version:
                    continue
                if name == ERRORS_TOTAL:
                    failed += counter.increase
                else:
                    bound = _le(extra)
                    by_le[bound] = by_le.get(bound, 0.0) + counter.increase
            result[variant] = counts_from_buckets(
                failed, [by_le.get(b, 0.0) for b in LATENCY_BOUNDS]
            )
        return result


# --- the inference log --------------------------------------------------------------------------


class LogSource(Protocol):
    """Scores, delayed labels and windows of logged rows, per variant and model version."""

    def scores(
        self, variant: Variant, version: int, start: datetime, end: datetime
    ) -> npt.NDArray[np.float64]:
        """The probabilities ``version`` gave as ``variant`` in ``[start, end)``."""
        ...

    def labelled(
        self, variant: Variant, version: int, start: datetime, end: datetime
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """``(probabilities, labels)`` of its predictions in ``[start, end)`` that got a label."""
        ...

    def window(
        self, variant: Variant, version: int, start: datetime, end: datetime, max_rows: int
    ) -> pd.DataFrame:
        """Its most recent ``max_rows`` logged rows in ``[start, end)``, oldest first."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class JudgeLogInputs(NamedTuple):
    """What ``monitoring/judge/log_evidence.py`` builds the judge's evidence from.

    Attributes:
        rows: Rows scored or failed over the canary's life (``judge_rows``).
        labels: Labelled predictions made over the canary's life (``judge_labels``).
        baseline: Rows of the period before the canary started (``judge_rows``).
    """

    rows: pd.DataFrame
    labels: pd.DataFrame
    baseline: pd.DataFrame


@runtime_checkable
class JudgeLogSource(Protocol):
    """A log source that also keeps each row's routing hash, latency, slice and failure."""

    def judge_inputs(
        self, started: datetime, now: datetime, baseline_seconds: float
    ) -> JudgeLogInputs | None:
        """The rows over ``[started, now)`` and the ``baseline_seconds`` before ``started``.

        Returns None when the log does not record what the judge needs (a table an older
        service created and no current service has upgraded).
        """
        ...


class InferenceLogSource:
    """The inference log the service writes (``serving/inference_log.py``), read-only.

    Args:
        reader: The log's reader (SQLite or PostgreSQL).

    Every method raises :class:`SourceUnavailable` when the database cannot be read (down, or
    locked past its timeout); a log the service has not written yet reads as empty.
    """

    name: SourceName = "inference_log"

    def __init__(self, reader: InferenceLogReader) -> None:
        self.reader = reader
        # The baseline period ends where a canary started, so its rows never change.
        self._baseline: tuple[tuple[float, float], pd.DataFrame] | None = None

    def __repr__(self) -> str:
        return f"InferenceLogSource({self.reader.engine.url!r})"

    def close(self) -> None:
        """Release the reader's connections."""
        self.reader.close()

    def _unavailable(self, exc: Exception) -> SourceUnavailable:
        cause = str(exc).splitlines()[0][:200]
        return SourceUnavailable(
            "inference_log",
            f"cannot read {self.reader.engine.url.render_as_string(hide_password=True)} ({cause})",
            _LOG_HOLD_REASON,
        )

    def scores(
        self, variant: Variant, version: int, start: datetime, end: datetime
    ) -> npt.NDArray[np.float64]:
        """See :meth:`LogSource.scores`."""
        t = self.reader.predictions
        # Only the one column: a canary's lifetime of rows is cheap this way, not as a frame.
        query = sa.select(t.c.probability).where(
            t.c.ts >= start.timestamp(),
            t.c.ts < end.timestamp(),
            t.c.variant == variant,
            t.c.model_version == version,
        )
        try:
            # Like the reader: before the service logged anything there is no table, and that
            # is an empty window (the judge then lacks the sample to promote), not an outage.
            if not sa.inspect(self.reader.engine).has_table(t.name):
                return np.asarray([], dtype=np.float64)
            with self.reader.engine.connect() as conn:
                values = conn.execute(query).scalars().all()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return np.asarray(values, dtype=np.float64)

    def labelled(
        self, variant: Variant, version: int, start: datetime, end: datetime
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """See :meth:`LogSource.labelled`."""
        try:
            frame = self.reader.labeled(start, end, variant)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from exc
        frame = frame[frame["model_version"] == version]
        return (
            frame["probability"].to_numpy(dtype=np.float64),
            frame["label"].to_numpy(dtype=np.int64),
        )

    def judge_inputs(
        self, started: datetime, now: datetime, baseline_seconds: float
    ) -> JudgeLogInputs | None:
        """See :meth:`JudgeLogSource.judge_inputs`; the baseline is read once per canary."""
        try:
            if not self.reader.has_judge_columns():
                return None
            rows = self.reader.judge_rows(started, now)
            labels = self.reader.judge_labels(started, now)
            key = (started.timestamp(), baseline_seconds)
            if self._baseline is None or self._baseline[0] != key:
                since = started.timestamp() - baseline_seconds
                self._baseline = (key, self.reader.judge_rows(since, started))
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from exc
        return JudgeLogInputs(rows, labels, self._baseline[1])

    def window(
        self, variant: Variant, version: int, start: datetime, end: datetime, max_rows: int
    ) -> pd.DataFrame:
        """See :meth:`LogSource.window`."""
        try:
            frame = self.reader.window(start, end, variant)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise self._unavailable(exc) from exc
        frame = frame[frame["model_version"] == version]
        return frame.tail(max_rows).reset_index(drop=True)


def _log_hold_reason() -> HoldReason:
    # monitoring/metrics.py has no reason of its own for the inference log yet; until it has
    # one, a log outage is reported as data the judge cannot trust.
    wanted = "inference_log_unreachable"
    return wanted if wanted in HOLD_REASONS else "stale_metrics"


_LOG_HOLD_REASON: Final[HoldReason] = _log_hold_reason()


# --- MLflow: reference samples and reports -------------------------------------------------------


class RunArtifacts:
    """The reference sample of each model version, and its drift reports, in its MLflow run.

    Args:
        client: An MLflow client on the registry's tracking store.
        registry: The registry, to find each version's training run.
    """

    def __init__(self, client: MlflowClient, registry: ModelRegistry) -> None:
        self._client = client
        self._registry = registry

    def _run_id(self, version: int) -> str:
        from registry import RegistryError

        try:
            run_id = self._registry.version(version).run_id
        except RegistryError as exc:
            raise SourceUnavailable("mlflow", str(exc), "registry_unreachable") from exc
        if not run_id:
            raise ReferenceNotFound(f"model version {version} has no training run recorded")
        return run_id

    def reference(self, version: int) -> pd.DataFrame:
        """The reference sample logged with ``version``'s training run.

        Raises:
            ReferenceNotFound: If the run has no ``reference/reference.parquet``.
            SourceUnavailable: If MLflow cannot be reached.
        """
        from mlflow.exceptions import MlflowException

        run_id = self._run_id(version)
        missing = f"model version {version} (run {run_id}) has no {REFERENCE_ARTIFACT}"
        folder, _, _ = REFERENCE_ARTIFACT.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="mlplat-reference-") as tmp:
            try:
                # Listing first tells "not logged" apart from "store unreachable", which a
                # failed download does not (its message is the same for both).
                listed = {f.path for f in self._client.list_artifacts(run_id, folder)}
                if REFERENCE_ARTIFACT not in listed:
                    raise ReferenceNotFound(missing)
                local = Path(self._client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp))
            except (MlflowException, OSError) as exc:
                raise SourceUnavailable(
                    "mlflow", f"cannot download {REFERENCE_ARTIFACT}: {exc}", "registry_unreachable"
                ) from exc
            return pd.read_parquet(local)

    def attach(self, version: int, path: Path) -> str:
        """Attach a drift report to ``version``'s run under ``drift/``; return its artifact path.

        Raises:
            SourceUnavailable: If MLflow cannot be reached.
        """
        from mlflow.exceptions import MlflowException

        run_id = self._run_id(version)
        try:
            self._client.log_artifact(run_id, str(path), "drift")
        except (MlflowException, OSError) as exc:
            raise SourceUnavailable("mlflow", f"cannot attach {path.name}: {exc}",
                                    "registry_unreachable") from exc  # fmt: skip
        return f"runs:/{run_id}/drift/{path.name}"
