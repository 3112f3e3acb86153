"""Start and stop a real service process (``python -m serving``) for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port


@dataclass
class ServiceProcess:
    """A running ``python -m serving``.

    Attributes:
        url: Its base URL.
        process: The process (leader of its own group).
        log: Where its output goes.
        started_at: ``time.monotonic()`` when it was started.
    """

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    started_at: float

    def tail(self) -> str:
        """The end of its log, for failure messages."""
        return self.log.read_text(errors="replace")[-3000:]

    def wait_for(self, path: str, status: int, deadline_s: float) -> float:
        """Poll ``path`` until it answers ``status``; return seconds since the start."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                if httpx.get(f"{self.url}{path}", timeout=2).status_code == status:
                    return time.monotonic() - self.started_at
            except httpx.TransportError:
                pass
            if self.process.poll() is not None:
                pytest.fail(f"service exited with {self.process.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{path} did not answer {status} in {deadline_s:.0f} s:\n{self.tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM the group; SIGKILL it if it does not stop in time."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_service(env: dict[str, str], log: Path, workers: int = 1) -> ServiceProcess:
    """Start the service on a free loopback port with exactly ``env`` (does not wait)."""
    port = free_port()
    command = [
        sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return ServiceProcess(f"http://127.0.0.1:{port}", process, log, time.monotonic())
