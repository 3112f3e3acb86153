"""A small load generator, run as its own process: steady single-record /predict traffic.

``python -m tests.integration.serving.loadgen URL --seconds S --concurrency C --out FILE``
keeps C requests in flight for S seconds (or until ``--max-requests``), each for a random
customer out of a large pool, and writes a JSON summary: totals, failures by status or
exception, and answers per variant. Loopback targets only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from serving.schemas import EXAMPLE_RECORD


async def _worker(
    client: httpx.AsyncClient,
    url: str,
    deadline: float,
    budget: list[int],
    rng: random.Random,
    summary: dict[str, Counter[str]],
) -> None:
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        customer = f"c-{rng.randrange(1_000_000):07d}"
        body = {"records": [{**EXAMPLE_RECORD, "customer_id": customer}]}
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            summary["failures"][type(exc).__name__] += 1
            continue
        if response.status_code != 200:
            summary["failures"][f"HTTP {response.status_code}"] += 1
            continue
        summary["ok"]["count"] += 1
        summary["variants"][response.json()["predictions"][0]["variant"]] += 1


async def run(
    url: str, seconds: float, concurrency: int, max_requests: int, seed: int
) -> dict[str, object]:
    """Generate the load and return the summary."""
    host = urlsplit(url).hostname
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise SystemExit(f"refusing to load a non-loopback host: {host}")
    summary: dict[str, Counter[str]] = {
        "ok": Counter(),
        "failures": Counter(),
        "variants": Counter(),
    }
    budget = [max_requests]
    started = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        await asyncio.gather(
            *(
                _worker(client, url, started + seconds, budget, random.Random(seed + i), summary)
                for i in range(concurrency)
            )
        )
    return {
        "seconds": time.monotonic() - started,
        "ok": summary["ok"]["count"],
        "failures": dict(summary["failures"]),
        "variants": dict(summary["variants"]),
    }


def main() -> None:
    """Parse arguments, run, write the summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = asyncio.run(
        run(args.url, args.seconds, args.concurrency, args.max_requests, args.seed)
    )
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
