"""Counts from the Prometheus HTTP API: ``increase()`` over the canary's lifetime."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

import httpx

from interfaces.metric_names import ERRORS_TOTAL, PREDICTION_LATENCY_SECONDS
from interfaces.routing import CANARY, CHAMPION, Variant
from monitoring.judge.counters import (
    LATENCY_BOUNDS,
    SERVER_ERROR_CLASSES,
    VariantCounts,
    counts_from_buckets,
)
from monitoring.sources.base import SourceName, SourceUnavailable, parse_le

__all__ = ["PrometheusSource"]

_SERVER_ERRORS_RE: Final = "|".join(SERVER_ERROR_CLASSES)


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
                parse_le(s["metric"].get("le", "+Inf")): float(s["value"][1])
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
