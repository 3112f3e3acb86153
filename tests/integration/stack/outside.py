"""Run compose services outside Docker: same command, same environment, hostnames on loopback.

:class:`Loopback` rewrites what a container would see into what a process on this machine
needs, and nothing else:

* ``service:port`` (``http://mlflow:5000``, ``serving:8000``) becomes ``127.0.0.1:<free port>``;
  a service's own listen address (``0.0.0.0:9090``, ``--port 8000``, ``localhost:9093`` in its
  healthcheck) becomes its loopback port.
* PostgreSQL URLs (``…@postgres:5432/<db>``) become fresh databases on the machine's server.
* Container paths (volumes, bind mounts, tmpfs, files the image ships, the image's binaries)
  become folders of the test, or this repository's files.
* ``$$`` (compose's escape for a literal ``$``) becomes ``$``.

:class:`Stack` starts the rewritten commands as process groups, runs each healthcheck's
rewritten test until it passes (or the deadline, or the process, ends), and stops every group.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.stack.compose import REPO, Service

DatabaseFactory = Callable[[], str]

LOOPBACK = "127.0.0.1"
VENV_BIN = Path(sys.executable).parent

DEFAULT_PORTS = {"postgres": 5432}
"""Container ports of services that publish none (the image's convention)."""

IMAGE_FILES: dict[str, dict[str, Path]] = {
    # The Dockerfile copies deploy/*.py to /app/deploy (test_compose_file checks it does).
    "mlplat": {"/app/deploy": REPO / "deploy"},
}
"""Paths inside an image that map to files of this repository, by image name."""

IMAGE_BINARIES: dict[str, dict[str, str]] = {
    "prom/prometheus": {"/bin/prometheus": "prometheus"},
    "prom/alertmanager": {"/bin/alertmanager": "prometheus-alertmanager"},
}
"""Binaries inside an image and the name of the same program on this machine (Debian)."""


def image_name(reference: str) -> str:
    """``prom/prometheus:v2.53.2`` -> ``prom/prometheus``."""
    name = reference.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def container_port(service: Service) -> int | None:
    """The port a service listens on inside its container."""
    published = service.published
    if published:
        return published[0][2]
    return DEFAULT_PORTS.get(service.name)


@dataclass
class Loopback:
    """The rewriting of one stack's commands and environments onto this machine.

    Attributes:
        services: The resolved compose services.
        ports: Loopback port of each service that listens on one.
        databases: Database name (in the compose URLs) -> URL of a fresh database here.
        paths: Per service, container path -> path here (mounts and image files).
        binaries: Per service, container binary -> program here.
    """

    services: Mapping[str, Service]
    ports: Mapping[str, int]
    databases: Mapping[str, str]
    paths: Mapping[str, Mapping[str, Path]]
    binaries: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = sorted(self.services, key=len, reverse=True)
        self._host_port = re.compile(
            r"(?<![\w.-])(" + "|".join(re.escape(n) for n in names) + r"):(\d+)(?!\d)"
        )
        self._postgres_url = re.compile(r"postgresql(?:\+\w+)?://[^@/\s]+@postgres:5432/(\w+)")

    def text(self, service: str, value: str) -> str:
        """Rewrite one argument or environment value of ``service``."""
        value = value.replace("$$", "$")
        value = self._postgres_url.sub(self._database, value)
        own = container_port(self.services[service])
        if own is not None and service in self.ports:
            local = f"{LOOPBACK}:{self.ports[service]}"
            value = re.sub(rf"(?:0\.0\.0\.0|127\.0\.0\.1|localhost):{own}(?!\d)", local, value)
        value = self._host_port.sub(self._service_address, value)
        value = _replace_paths(value, {
            **{k: str(v) for k, v in self.paths.get(service, {}).items()},
            **self.binaries.get(service, {}),
        })  # fmt: skip
        return value.replace("0.0.0.0", LOOPBACK)

    def argv(self, service: str, argv: list[str]) -> list[str]:
        """Rewrite a command line; ``--port <own port>`` becomes the loopback port."""
        out = [self.text(service, word) for word in argv]
        own = container_port(self.services[service])
        for index, word in enumerate(out[:-1]):
            if word == "--port" and own is not None and out[index + 1] == str(own):
                out[index + 1] = str(self.ports[service])
        return out

    def environment(self, service: str) -> dict[str, str]:
        """The service's compose environment, rewritten."""
        env = self.services[service].environment
        return {key: self.text(service, value) for key, value in env.items()}

    def _database(self, match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in self.databases:
            raise KeyError(f"no test database for {name!r} (used in {match.group(0)!r})")
        return self.databases[name]

    def _service_address(self, match: re.Match[str]) -> str:
        name, port = match.group(1), int(match.group(2))
        expected = container_port(self.services[name])
        if expected != port:
            raise ValueError(
                f"{match.group(0)!r}: service {name} listens on {expected}, not {port}"
            )
        return f"{LOOPBACK}:{self.ports[name]}"


def _replace_paths(value: str, mapping: Mapping[str, str]) -> str:
    """Replace whole container paths (not parts of longer ones) in one pass, longest first."""
    if not mapping:
        return value
    alternatives = "|".join(re.escape(p) for p in sorted(mapping, key=len, reverse=True))
    pattern = re.compile(r"(?<![\w./-])(" + alternatives + r")(?=$|[/\s\"',;:])")
    return pattern.sub(lambda m: mapping[m.group(1)], value)


def fresh_databases(services: Mapping[str, Service], create: DatabaseFactory) -> dict[str, str]:
    """A fresh database for POSTGRES_DB and for every CREATE DATABASE of the init script.

    Args:
        services: The resolved compose services (``postgres`` among them).
        create: Makes an empty database on the machine's server and returns its URL.
    """
    postgres = services["postgres"]
    names = {postgres.environment["POSTGRES_DB"]}
    for mount in postgres.mounts:
        if mount.target == "/docker-entrypoint-initdb.d" and mount.source:
            for script in sorted(Path(mount.source).glob("*.sql")):
                names |= set(re.findall(r"(?im)^\s*CREATE DATABASE (\w+)", script.read_text()))
    return {name: create() for name in sorted(names)}


def container_paths(
    services: Mapping[str, Service],
    root: Path,
    replaced: Mapping[str, Mapping[str, Path]] | None = None,
) -> dict[str, dict[str, Path]]:
    """Container path -> local path, per service: mounts and image files.

    Args:
        services: The resolved compose services.
        root: Folder under which named volumes and tmpfs mounts get their local folders.
        replaced: Per service, mount targets to serve from another local folder instead of the
            mount's source (configurations rendered for loopback).
    """
    out: dict[str, dict[str, Path]] = {}
    for name, service in services.items():
        instead = (replaced or {}).get(name, {})
        paths: dict[str, Path] = {}
        for mount in service.mounts:
            if mount.target in instead:
                paths[mount.target] = instead[mount.target]
            elif mount.kind == "bind":
                assert mount.source is not None
                paths[mount.target] = Path(mount.source)
            elif mount.kind == "volume":
                paths[mount.target] = root / "volumes" / str(mount.source)
            else:
                paths[mount.target] = root / "tmpfs" / name / mount.target.strip("/")
        if service.built:
            paths.update(IMAGE_FILES["mlplat"])
        for path in paths.values():
            if not path.suffix:
                path.mkdir(parents=True, exist_ok=True)
        out[name] = paths
    return out


def healthcheck_argv(test: list[str]) -> list[str]:
    """A compose healthcheck test as a command line (``CMD-SHELL`` runs through ``/bin/sh``)."""
    kind, *rest = test
    if kind == "CMD":
        return rest
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", rest[0]]
    raise ValueError(f"healthcheck test must start with CMD or CMD-SHELL, not {kind!r}")


@dataclass
class Stack:
    """Processes started from compose services, each in its own process group.

    Attributes:
        loopback: How commands and environments are rewritten.
        root: Folder for logs, homes and temporary directories.
    """

    loopback: Loopback
    root: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def base_environment(self, service: str) -> dict[str, str]:
        """What a container has besides compose's variables: PATH to the tools, a HOME, a TMPDIR."""
        home = self.root / "home" / service
        tmp = self.root / "tmp" / service
        home.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        return {
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
        }

    def environment(self, service: str) -> dict[str, str]:
        """The full environment of ``service``'s processes."""
        return {**self.base_environment(service), **self.loopback.environment(service)}

    def log(self, service: str) -> Path:
        """The file a service's output goes to."""
        return self.root / "logs" / f"{service}.log"

    def start(self, service: str, argv: list[str] | None = None) -> subprocess.Popen[bytes]:
        """Start ``service``'s command (or ``argv``, rewritten the same way) in the background."""
        spec = self.loopback.services[service]
        command = self.loopback.argv(service, argv if argv is not None else spec.argv)
        workdir = self.root / "work" / service
        workdir.mkdir(parents=True, exist_ok=True)
        log = self.log(service)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                command, cwd=workdir, env=self.environment(service), stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.processes[service] = process
        return process

    def check_health(self, service: str) -> bool:
        """Run the service's healthcheck once; whether it passed."""
        test = self.loopback.services[service].healthcheck
        if test is None:
            raise ValueError(f"{service} has no healthcheck")
        argv = self.loopback.argv(service, healthcheck_argv(test))
        try:
            done = subprocess.run(
                argv, env=self.environment(service), cwd=self.root, capture_output=True,
                timeout=10, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def wait_healthy(self, service: str, deadline_s: float) -> float:
        """Poll the healthcheck until it passes; return the seconds it took.

        Raises:
            AssertionError: If the process exits first or the deadline passes (with its log).
        """
        started = time.monotonic()
        process = self.processes.get(service)
        while time.monotonic() - started < deadline_s:
            if self.check_health(service):
                return time.monotonic() - started
            if process is not None:
                try:
                    process.wait(timeout=0.5)  # doubles as the poll interval
                except subprocess.TimeoutExpired:
                    continue
                raise AssertionError(
                    f"{service} exited with {process.returncode} before it was healthy:\n"
                    f"{self.tail(service)}"
                )
            time.sleep(0.5)
        raise AssertionError(
            f"{service} not healthy after {deadline_s:.0f} s:\n{self.tail(service)}"
        )

    def wait_exit(self, service: str, deadline_s: float) -> int:
        """Wait for a one-shot service to finish; return its exit status."""
        process = self.processes[service]
        try:
            return process.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{service} still running after {deadline_s:.0f} s:\n{self.tail(service)}"
            ) from None

    def tail(self, service: str, lines: int = 60) -> str:
        """The end of a service's log."""
        log = self.log(service)
        if not log.exists():
            return "(no output)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, service: str) -> None:
        """Stop a service's process group: SIGTERM, then SIGKILL after a grace period."""
        process = self.processes.pop(service, None)
        if process is None:
            return
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; make sure nothing it started outlives it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            return

    def stop_all(self) -> None:
        """Stop every process group, the last started first."""
        for service in reversed(list(self.processes)):
            self.stop(service)


def poll(
    what: str, probe: Callable[[], object], deadline_s: float, interval_s: float = 0.5
) -> object:
    """Call ``probe`` until it returns something truthy; fail with ``what`` at the deadline."""
    started = time.monotonic()
    last_error: Exception | None = None
    while time.monotonic() - started < deadline_s:
        try:
            result = probe()
        except Exception as exc:  # a server still starting answers with all sorts of errors
            last_error = exc
        else:
            if result:
                return result
        time.sleep(interval_s)
    raise AssertionError(f"{what}: not true after {deadline_s:.0f} s (last error: {last_error!r})")
