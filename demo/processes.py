"""The demo's child processes, ``mlplat serve`` and ``mlplat traffic``, and its background loops.

Each child runs in its own process (its own interpreter lock: the service and the load generator are
both CPU-bound on a 2-core machine, and sharing one lock with the controller would slow all
three), on loopback, with its output in a log file under ``<out>/logs``. The environment they
get is the caller's minus every ``MLPLAT_*`` and ``MLFLOW_*`` variable, plus the demo's own
store: a shell configured for another store can never leak into the demo.

Stopping is SIGTERM to the child's own process group, then SIGKILL after a grace period; every
stop is idempotent, so the demo's cleanup can call it from any path (normal end, an exception,
Ctrl-C). The controller's cycle and the sampler run in-process instead, each a :class:`Loop`
thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

__all__ = [
    "ADDRESS_IN_USE",
    "ChildProcess",
    "DemoProcessError",
    "Loop",
    "child_environment",
    "free_port",
    "mlplat_command",
]

logger = logging.getLogger(__name__)

_STOP_GRACE_S = 10.0
ADDRESS_IN_USE = "address already in use"
"""What a server's log says when its port was taken before it could bind it (errno 98)."""
_FOREIGN_PREFIXES = ("MLPLAT_", "MLFLOW_")


class DemoProcessError(RuntimeError):
    """A child process exited early or did not become ready; the message quotes its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    Not reserved: the probe closes its socket so the child can bind the port, and another
    process may take it in between. A child that then fails says so in its log
    (:meth:`ChildProcess.lost_its_port`), and its caller starts it again on a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_environment(base: Mapping[str, str], settings: Mapping[str, str]) -> dict[str, str]:
    """``base`` without ``MLPLAT_*``/``MLFLOW_*`` variables, plus ``settings``."""
    env = {k: v for k, v in base.items() if not k.startswith(_FOREIGN_PREFIXES)}
    env.update(settings)
    return env


def mlplat_command(*args: str) -> list[str]:
    """``mlplat <args>`` run by this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "mlplat", *args]


class ChildProcess:
    """One child process with its log file.

    Args:
        name: Short name, used for the log file and messages.
        command: Program and arguments.
        env: Its complete environment.
        log_path: Where its stdout and stderr go (appended).
    """

    def __init__(
        self, name: str, command: Sequence[str], env: Mapping[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self._env = dict(env)
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"ChildProcess({self.name!r}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        """The process id while it was started, else ``None``."""
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        """Start it in its own session (a Ctrl-C in the terminal is the demo's to handle)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._env, start_new_session=True,
            )  # fmt: skip

    def running(self) -> bool:
        """Whether it was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        """Its exit status once it exited, else ``None``."""
        return None if self._process is None else self._process.poll()

    def tail(self, chars: int = 2_000) -> str:
        """The end of its log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def lost_its_port(self) -> bool:
        """Whether it exited because its port was already taken (:data:`ADDRESS_IN_USE`)."""
        return self.exit_code() not in (None, 0) and ADDRESS_IN_USE in self.tail().lower()

    def check_alive(self) -> None:
        """Raise if it exited.

        Raises:
            DemoProcessError: It exited; the message quotes the end of its log.
        """
        code = self.exit_code()
        if code is not None:
            raise DemoProcessError(
                f"{self.name} exited with status {code}; the end of {self.log_path}:\n{self.tail()}"
            )

    def wait_until_ready(self, url: str, timeout_s: float) -> float:
        """Poll ``url`` until it answers 200; return the seconds it took.

        Raises:
            DemoProcessError: It exited, or ``url`` did not answer 200 within ``timeout_s``.
        """
        started = time.monotonic()
        deadline = started + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while True:
                self.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return time.monotonic() - started
                if time.monotonic() > deadline:
                    raise DemoProcessError(
                        f"{self.name} did not answer {url} within {timeout_s:g} s; the end of "
                        f"{self.log_path}:\n{self.tail()}"
                    )
                time.sleep(0.2)

    def stop(self, grace_s: float = _STOP_GRACE_S) -> int | None:
        """SIGTERM its process group, SIGKILL after ``grace_s``; return its exit status."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                process.wait(timeout=grace_s)
        return process.returncode

    def _signal(self, sig: int) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, sig)


class Loop:
    """Calls ``step`` every ``interval_s`` in a daemon thread until stopped."""

    def __init__(self, name: str, step: Callable[[], None], interval_s: float) -> None:
        self._step = step
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ask it to stop after the current step and wait up to ``timeout_s`` for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._step()
            except Exception:  # the loop must outlive one bad step; the log says what broke
                logger.exception("%s: step failed", self._thread.name)
            self._stop.wait(max(0.0, self._interval_s - (time.monotonic() - started)))
