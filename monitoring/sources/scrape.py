"""Counts from the inference service's own ``/metrics``, with no Prometheus at all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from interfaces.metric_names import ERRORS_TOTAL, PREDICTION_LATENCY_SECONDS
from interfaces.routing import CANARY, CHAMPION, Variant
from monitoring.judge.counters import (
    LATENCY_BOUNDS,
    SERVER_ERROR_CLASSES,
    VariantCounts,
    counts_from_buckets,
)
from monitoring.sources.base import SourceName, SourceUnavailable, parse_le

__all__ = ["ScrapeSource"]


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
                    bound = parse_le(extra)
                    by_le[bound] = by_le.get(bound, 0.0) + counter.increase
            result[variant] = counts_from_buckets(
                failed, [by_le.get(b, 0.0) for b in LATENCY_BOUNDS]
            )
        return result
