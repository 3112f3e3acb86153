"""Load generation for the serving benchmark: servers in their own processes, ``wrk`` runs.

Everything here measures from the outside: a server is a uvicorn process, the load is a ``wrk``
process, and the server's CPU time comes from ``/proc`` — nothing shares an interpreter (or a
GIL) with what it measures.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from benchmarks.report import BenchmarkError

__all__ = [
    "LoadResult",
    "measured_run",
    "parse_wrk",
    "run_wrk",
    "server",
    "simultaneous_runs",
    "wait_until_idle",
    "wrk_version",
]


@dataclass(frozen=True)
class LoadResult:
    """One ``wrk`` run."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us_per_request: float | None = None


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(output: str) -> LoadResult:
    """Read requests/s, p50/p99 latency and error counts from ``wrk --latency`` output.

    Raises:
        BenchmarkError: The output lacks the figures (wrk failed).
    """
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s|m)\b", output, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\b", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and total):
        raise BenchmarkError(f"could not read wrk's output:\n{output}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return LoadResult(
        requests_per_second=float(rps.group(1)),
        p50_ms=_ms(*p50.groups()),
        p99_ms=_ms(*p99.groups()),
        requests=int(total.group(1)),
        errors=errors,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wrk_command(
    wrk: str, url: str, script: Path, concurrency: int, duration_seconds: float
) -> list[str]:
    return [
        wrk,
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration_seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url,
    ]


def run_wrk(
    wrk: str, url: str, script: Path, concurrency: int, duration_seconds: float
) -> LoadResult:
    """Run one closed-loop load of ``concurrency`` connections against ``url``."""
    command = _wrk_command(wrk, url, script, concurrency, duration_seconds)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_seconds + 60, check=False
    )
    if done.returncode != 0:
        raise BenchmarkError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, deadline_seconds: float = 15.0) -> None:
    """Wait until process ``pid`` stops using CPU (it may still drain a backlog after a run).

    Without this, a server that falls behind under load (the naive one) keeps a core busy
    into the next measurement and penalises whichever target runs after it.
    """
    previous = _cpu_seconds(pid)
    if previous is None:  # no /proc: fall back to a fixed pause
        time.sleep(1.0)
        return
    quiet = 0
    deadline = time.monotonic() + deadline_seconds
    while quiet < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        current = _cpu_seconds(pid) or previous
        quiet = quiet + 1 if current - previous < 0.02 else 0
        previous = current


@contextlib.contextmanager
def server(
    name: str,
    factory: str,
    env: dict[str, str],
    workdir: Path,
    ready_path: str,
    smoke_body: str,
) -> Iterator[tuple[str, int]]:
    """Run one uvicorn server in its own process; yield its base URL and pid.

    Args:
        name: For messages and the log file name.
        factory: ``module:function`` app factory.
        env: The server's whole environment.
        workdir: Where its log goes.
        ready_path: Polled until it answers 200.
        smoke_body: A ``/predict`` body that must answer 200 before any measurement.
    """
    port = _free_port()
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            _uvicorn_command(factory, port), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(name, process, base + ready_path, log_path)
        answer = httpx.post(
            base + "/predict",
            content=smoke_body,
            headers={"content-type": "application/json"},
            timeout=10,
        )
        if answer.status_code != 200:
            raise BenchmarkError(f"{name} answered {answer.status_code}: {answer.text[:500]}")
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _uvicorn_command(factory: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def _wait_until_ready(
    name: str, process: subprocess.Popen[bytes], url: str, log_path: Path
) -> None:
    """Poll ``url`` until it answers 200; fail with the server's log if it exits or stalls."""
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise BenchmarkError(f"{name} server exited with {process.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise BenchmarkError(f"{name} server not ready within 120 s (see {log_path})")
        time.sleep(0.2)


def wrk_version(wrk: str) -> str:
    """The first line of ``wrk -v`` (wrk prints its version there)."""
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0] if first else "wrk"


def measured_run(
    wrk: str, url: str, script: Path, concurrency: int, seconds: float, pid: int
) -> LoadResult:
    """One wrk run, plus the server's CPU time per request (backlog included)."""
    before = _cpu_seconds(pid)
    result = run_wrk(wrk, url, script, concurrency, seconds)
    wait_until_idle(pid)
    after = _cpu_seconds(pid)
    if before is None or after is None or not result.requests:
        return result
    return replace(result, cpu_us_per_request=(after - before) / result.requests * 1e6)


def simultaneous_runs(
    wrk: str,
    servers: dict[str, tuple[str, int]],
    script: Path,
    concurrency: int,
    seconds: float,
) -> dict[str, LoadResult]:
    """Load several servers at the same time, one wrk process each.

    Servers that run side by side share whatever else the machine is doing at that moment, so
    the ratio of their throughputs (and of their CPU per request) is their relative cost, free
    of the drift between two runs made one after the other.
    """
    before = {name: _cpu_seconds(pid) for name, (_, pid) in servers.items()}
    processes = {
        name: subprocess.Popen(
            _wrk_command(wrk, url, script, concurrency, seconds),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (url, _) in servers.items()
    }
    outputs = {name: p.communicate(timeout=seconds + 60) for name, p in processes.items()}
    results: dict[str, LoadResult] = {}
    for name, (stdout, stderr) in outputs.items():
        if processes[name].returncode != 0:
            raise BenchmarkError(f"wrk failed against {name}: {stderr or stdout}")
        results[name] = parse_wrk(stdout)
    for name, (_, pid) in servers.items():
        wait_until_idle(pid)
        start, end = before[name], _cpu_seconds(pid)
        if start is not None and end is not None and results[name].requests:
            cpu = (end - start) / results[name].requests * 1e6
            results[name] = replace(results[name], cpu_us_per_request=cpu)
    return results
