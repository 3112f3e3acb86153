"""A Docker engine for the stack test: the one that answers, or a ``dockerd`` started for it.

:func:`docker_engine` yields once ``docker info`` answers. When no engine answers and this
process may start one (``dockerd`` installed, running as root), it starts ``dockerd`` in the
background with its log in the artifacts folder, and stops it, and only it, at the end. Anything
missing is reported through :func:`tests.conftest.missing`: skipped locally, a failure in CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import missing

ENGINE_START_DEADLINE_S = 60.0
ENGINE_STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class Engine:
    """The engine the test talks to.

    Attributes:
        docker: Path of the ``docker`` client.
        version: The engine's version, as ``docker version`` reports it.
        started_here: Whether this test started the engine (and will stop it).
    """

    docker: str
    version: str
    started_here: bool


def docker(docker_bin: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run one ``docker`` command; never raises on a non-zero exit."""
    return subprocess.run(
        [docker_bin, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def engine_version(docker_bin: str) -> str | None:
    """The version of the engine that answers, or ``None`` when none does."""
    try:
        done = docker(docker_bin, "version", "--format", "{{.Server.Version}}", timeout=20)
    except subprocess.TimeoutExpired:
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


@contextlib.contextmanager
def docker_engine(log_dir: Path) -> Iterator[Engine]:
    """Yield an engine that answers; start ``dockerd`` when none does, and stop it afterwards.

    Args:
        log_dir: Where ``dockerd.log`` goes if the daemon is started here.
    """
    docker_bin = shutil.which("docker")
    if docker_bin is None:
        missing("docker is not installed: this test runs the stack on a Docker engine (docker.io)")
    assert docker_bin is not None
    version = engine_version(docker_bin)
    if version is not None:
        yield Engine(docker_bin, version, started_here=False)
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        missing("no Docker engine answers and dockerd is not installed (Debian: docker.io)")
    if os.geteuid() != 0:
        missing("no Docker engine answers, and only root may start dockerd here")
    assert dockerd is not None
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "dockerd.log").open("ab") as log:
        process = subprocess.Popen(
            [dockerd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + ENGINE_START_DEADLINE_S
        while (version := engine_version(docker_bin)) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (log_dir / "dockerd.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"dockerd did not come up (exit {process.poll()}):\n{tail}")
            time.sleep(0.5)
        yield Engine(docker_bin, version, started_here=True)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the daemon this test started: SIGTERM (it stops its containers), then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=ENGINE_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
