"""``mlplat traffic``: realistic load with delayed labels against a running inference service.

The generator replays rows of the seeded credit-default world (:func:`pipeline.generate`), or
rows drawn (seeded, with replacement) from your own labelled file or query (``--data``),
optionally through a named scenario (``serving-skew``, ``covariate-shift``…), at a fixed request
rate (open loop: a slow server does not slow the arrivals down, as with real users), one record
per request with the contract's routing key, if it names one. For a share of the requests it
sends the true label to ``POST /feedback`` after a delay, which is how outcomes (a loan's
default, say) arrive in real life — late.

It is used by the closed-loop demo, by the docker-compose stack's traffic service and by tests.
Every run is bounded by a duration and a request count, and stops by itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import click
import httpx
import numpy as np
import pandas as pd

from features import ENTITY_ID, FEATURE_NAMES, TARGET


@dataclass(frozen=True)
class TrafficPlan:
    """What to send, how fast, and for how long.

    Attributes:
        url: Base URL of the inference service.
        rate: Requests per second (open loop).
        duration_s: Stop after this many seconds.
        max_requests: Stop after this many requests, whichever comes first.
        scenario: Named scenario applied to the rows (serving side), if any.
        magnitude: The scenario's magnitude (its default when ``None``).
        seed: Seed of the rows (a different seed than training: these are new customers).
        data: Your labelled rows (a CSV/Parquet path or a SQLAlchemy URL) to draw requests
            from instead of the credit generator.
        query: The SELECT to run when ``data`` is a database URL.
        label_delay_s: Seconds between a prediction and its label.
        label_fraction: Share of predictions whose label ever arrives.
        concurrency: Most requests in flight at once.
        timeout_s: Per-request timeout.
    """

    url: str
    rate: float = 50.0
    duration_s: float = 60.0
    max_requests: int = 1_000_000
    scenario: str | None = None
    magnitude: float | None = None
    seed: int = 1_000
    data: str | None = None
    query: str | None = None
    label_delay_s: float = 2.0
    label_fraction: float = 1.0
    concurrency: int = 32
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0 requests/s, got {self.rate}")
        if not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if not 0.0 <= self.label_fraction <= 1.0:
            raise ValueError(f"label_fraction must be within [0, 1], got {self.label_fraction}")
        if self.label_delay_s < 0:
            raise ValueError(f"label_delay_s must be >= 0, got {self.label_delay_s}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")


@dataclass
class TrafficStats:
    """What happened, by outcome and by variant."""

    sent: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    transport_errors: int = 0
    labels_sent: int = 0
    labels_failed: int = 0
    by_variant: Counter[str] = field(default_factory=Counter)
    status_codes: Counter[int] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list, repr=False)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable summary with latency percentiles."""
        data = asdict(self)
        data.pop("latencies_s")
        data["by_variant"] = dict(self.by_variant)
        data["status_codes"] = {str(k): v for k, v in self.status_codes.items()}
        if self.latencies_s:
            p50, p99 = np.percentile(self.latencies_s, [50, 99])
            data["latency_p50_ms"] = round(float(p50) * 1000, 2)
            data["latency_p99_ms"] = round(float(p99) * 1000, 2)
        data["achieved_rate"] = round(self.sent / self.seconds, 1) if self.seconds else 0.0
        return data


def traffic_rows(
    n_rows: int,
    seed: int,
    scenario: str | None,
    magnitude: float | None,
    data: str | None = None,
    query: str | None = None,
) -> pd.DataFrame:
    """The rows to replay, through ``scenario`` if given.

    New customers from the credit world, or ``n_rows`` rows drawn with replacement (seeded)
    from the labelled rows ``data`` names (:func:`pipeline.table_sources.open_source`).
    """
    import features
    from pipeline import apply_scenario
    from pipeline.table_sources import open_source

    source = open_source(data, query, features.current(), n_rows=n_rows, seed=seed)
    frame = source.load()
    if data is not None:
        frame = frame.sample(n_rows, replace=True, random_state=seed).reset_index(drop=True)
    if scenario:
        frame = apply_scenario(frame, scenario, magnitude, seed=seed)
    return frame


def _records(frame: pd.DataFrame) -> list[tuple[dict[str, Any], int]]:
    """JSON-ready records (NaN → null) with their true label."""
    columns = [*([ENTITY_ID] if ENTITY_ID else []), *FEATURE_NAMES]
    out: list[tuple[dict[str, Any], int]] = []
    for row in frame[[*columns, TARGET]].itertuples(index=False):
        values = dict(zip([*columns, TARGET], row, strict=True))
        label = int(values.pop(TARGET))
        record = {
            k: (None if isinstance(v, float) and math.isnan(v) else _plain(v))
            for k, v in values.items()
        }
        out.append((record, label))
    return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class _Sender:
    """One run's open-loop sender: requests, their statuses and the labels sent later."""

    def __init__(
        self,
        plan: TrafficPlan,
        client: httpx.AsyncClient,
        rows: list[tuple[dict[str, Any], int]],
        labelled: np.ndarray[Any, Any],
    ) -> None:
        self.plan, self.client, self.rows, self.labelled = plan, client, rows, labelled
        self.stats = TrafficStats()
        self.gate = asyncio.Semaphore(plan.concurrency)
        self.pending: set[asyncio.Task[None]] = set()
        self.base = plan.url.rstrip("/")

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` in the background; :meth:`drain` waits for it."""
        task = asyncio.create_task(coroutine)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def drain(self) -> None:
        """Wait for every request and label still in flight (labels spawn no further work)."""
        while self.pending:
            await asyncio.gather(*list(self.pending), return_exceptions=True)

    async def label_later(self, request_id: str, label: int) -> None:
        """Send the label of one scored request after the plan's delay."""
        await asyncio.sleep(self.plan.label_delay_s)
        try:
            response = await self.client.post(
                f"{self.base}/feedback",
                json={"request_id": request_id, "row": 0, "label": label},
                timeout=self.plan.timeout_s,
            )
        except httpx.HTTPError:
            self.stats.labels_failed += 1
            return
        if response.status_code == 200:
            self.stats.labels_sent += 1
        else:
            self.stats.labels_failed += 1

    async def send(self, index: int) -> None:
        """Score request ``index`` and count its outcome; schedule its label if it gets one."""
        record, label = self.rows[index % len(self.rows)]
        request_id = f"traffic-{self.plan.seed}-{index}"
        async with self.gate:
            t0 = time.perf_counter()
            try:
                response = await self.client.post(
                    f"{self.base}/predict",
                    json={"records": [record]},
                    headers={"X-Request-ID": request_id},
                    timeout=self.plan.timeout_s,
                )
            except httpx.HTTPError:
                self.stats.transport_errors += 1
                return
            self.stats.latencies_s.append(time.perf_counter() - t0)
        self.stats.status_codes[response.status_code] += 1
        if response.status_code == 200:
            self.stats.ok += 1
            self.stats.by_variant[response.json()["predictions"][0]["variant"]] += 1
            if self.labelled[index]:
                self.spawn(self.label_later(request_id, label))
        elif response.status_code < 500:
            self.stats.client_errors += 1
        else:
            self.stats.server_errors += 1


async def run_traffic(plan: TrafficPlan, client: httpx.AsyncClient) -> TrafficStats:
    """Send the planned traffic and its delayed labels; return the statistics.

    Args:
        plan: Rate, duration, scenario and labelling of the run.
        client: The HTTP client (its ``base_url`` is ignored; ``plan.url`` is used).
    """
    total = min(plan.max_requests, math.ceil(plan.rate * plan.duration_s))
    rows = _records(
        traffic_rows(max(total, 1), plan.seed, plan.scenario, plan.magnitude, plan.data, plan.query)
    )
    labelled = np.random.default_rng(plan.seed).random(total) < plan.label_fraction
    sender = _Sender(plan, client, rows, labelled)
    started = time.perf_counter()
    for index in range(total):
        # Open loop: request i leaves at started + i / rate, whatever the server does.
        delay = started + index / plan.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sender.stats.sent += 1
        sender.spawn(sender.send(index))
    await sender.drain()
    sender.stats.seconds = time.perf_counter() - started
    return sender.stats


def run(plan: TrafficPlan) -> TrafficStats:
    """Run :func:`run_traffic` with its own event loop and HTTP client."""

    async def main() -> TrafficStats:
        limits = httpx.Limits(max_connections=plan.concurrency * 2)
        async with httpx.AsyncClient(limits=limits) as client:
            return await run_traffic(plan, client)

    return asyncio.run(main())


@click.command()
@click.option("--url", default="http://127.0.0.1:8000", show_default=True, help="Service base URL.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=50.0,
    show_default=True,
    help="Requests per second.",
)
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="Seconds.",
)
@click.option("--max-requests", type=click.IntRange(min=1), default=1_000_000, show_default=True)
@click.option(
    "--scenario",
    default=None,
    help="Scenario applied to the traffic (see `mlplat pipeline scenarios`).",
)
@click.option("--magnitude", type=float, default=None)
@click.option("--seed", type=click.IntRange(min=0), default=1_000, show_default=True)
@click.option(
    "--data", metavar="PATH|URL", envvar="MLPLAT_DATA", default=None,
    help="Draw requests from your labelled rows (.csv/.parquet or a SQLAlchemy URL with "
    "--query) instead of the credit generator. Env: MLPLAT_DATA.",
)  # fmt: skip
@click.option("--query", metavar="SQL", envvar="MLPLAT_QUERY", default=None)
@click.option(
    "--label-delay",
    "label_delay_s",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds until a label arrives.",
)
@click.option(
    "--label-fraction",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Share of predictions that get a label.",
)
@click.option("--concurrency", type=click.IntRange(1, 1024), default=32, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def traffic(as_json: bool, **options: Any) -> None:
    """Send requests (generated, or drawn from --data) to a running service, then labels, late."""
    from pipeline import ScenarioError

    try:
        plan = TrafficPlan(**options)
        stats = run(plan)
    except (ValueError, ScenarioError) as exc:
        raise click.ClickException(str(exc)) from None
    summary = stats.to_dict()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"sent {summary['sent']} requests in {summary['seconds']:.1f}s "
            f"({summary['achieved_rate']}/s): {summary['ok']} ok, "
            f"{summary['client_errors']} 4xx, {summary['server_errors']} 5xx, "
            f"{summary['transport_errors']} failed; by variant {summary['by_variant']}; "
            f"labels sent {summary['labels_sent']}"
        )
    if stats.ok == 0:
        raise SystemExit(1)
