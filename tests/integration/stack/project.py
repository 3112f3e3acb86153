"""The compose stack as a user runs it: a copy of the repository, a filled-in ``.env``, ``make``.

:func:`snapshot` copies the files git would put in a clone (tracked and new, not ignored) to a
folder of the test, so the image is built and the stack bind-mounts from one fixed tree while the
working tree may change. :class:`Project` runs ``make`` targets and ``docker-compose`` there
under its own project name, with the only override of the compose file being
``no-grafana.yml``, and collects what a failed run leaves to read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import missing
from tests.integration.stack.compose import REPO

NO_GRAFANA = Path(__file__).resolve().parent / "no-grafana.yml"
LOCK = Path(tempfile.gettempdir()) / "mlplat-stack-test.lock"
EXTRA_CA_ENV = "MLPLAT_STACK_EXTRA_CA_CERT"
"""A PEM file the image build's pip must trust (a TLS-intercepting proxy's CA), if set."""
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
"""Where Debian keeps the CA certificates added to this machine (a proxy's CA goes there)."""
CA_BUNDLE_VARIABLES = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
PASSED_THROUGH = ("PATH", "HOME", "LANG", "TMPDIR", "DOCKER_HOST", "DOCKER_CONFIG",
                  "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")  # fmt: skip
"""The caller's variables the commands get. Nothing else: a POSTGRES_PASSWORD or MLFLOW_* in
the caller's shell would win over ``.env`` in compose's interpolation."""


@contextlib.contextmanager
def only_run(lock: Path = LOCK) -> Iterator[None]:
    """Hold the machine's stack-test lock, or report that another run holds it.

    Two runs at once would share one engine and one image tag, and the first to finish would stop
    the ``dockerd`` the other uses; two stacks would not fit two cores' time budget either.
    """
    with lock.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            missing(f"another stack test holds {lock} ({handle.read().strip() or 'unknown'})")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} in {REPO}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def snapshot(target: Path) -> Path:
    """Copy the repository's files (tracked or new, not git-ignored) to ``target``."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if not source.exists():  # deleted in the working tree, not yet in the index
            continue
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination, follow_symlinks=False)
    return target


def git_commit() -> str:
    """The commit checked out (the image's GIT_COMMIT build argument)."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def extra_ca_pem() -> str:
    """The CA certificates pip in the image build must trust besides its own bundle, as PEM.

    Containers may reach PyPI only through a TLS-intercepting proxy, whose CA this machine
    trusts but a fresh image does not. In order: the file ``$MLPLAT_STACK_EXTRA_CA_CERT``; the
    certificates added to this machine (``/usr/local/share/ca-certificates``, where Debian
    keeps local CAs); the bundle pip or requests are pointed at here. Empty when none exists,
    which changes nothing in the build.
    """
    if os.environ.get(EXTRA_CA_ENV):
        return Path(os.environ[EXTRA_CA_ENV]).read_text(encoding="utf-8")
    local = sorted(LOCAL_CAS.glob("**/*.crt")) if LOCAL_CAS.is_dir() else []
    if local:
        return "\n".join(path.read_text(encoding="utf-8").strip() for path in local)
    for variable in CA_BUNDLE_VARIABLES:
        bundle = Path(os.environ.get(variable, ""))
        if bundle.is_file():
            return bundle.read_text(encoding="utf-8")
    return ""


@dataclass
class Project:
    """One compose project in a copy of the repository.

    Attributes:
        tree: The copy (holds ``.env``).
        name: The compose project name (containers, volumes and networks are prefixed with it).
        compose: The docker-compose program.
        make: The make program.
        docker: The docker client.
        artifacts: Where command output and, after a failure, service logs are kept.
        build_args: GIT_COMMIT and EXTRA_CA_CERT, from the shell as the README has it.
    """

    tree: Path
    name: str
    compose: str
    make: str
    docker: str
    artifacts: Path
    build_args: dict[str, str]

    @property
    def environment(self) -> dict[str, str]:
        """What every command gets: the caller's basics, the project name and files, build args."""
        env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
        return {
            **env,
            **self.build_args,
            "COMPOSE_PROJECT_NAME": self.name,
            "COMPOSE_FILE": f"docker-compose.yml{os.pathsep}{NO_GRAFANA}",
        }

    def run(self, argv: list[str], log: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a command in the copy; return its output, also added to ``<artifacts>/<log>.log``."""
        done = subprocess.run(
            argv, cwd=self.tree, env=self.environment, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        with (self.artifacts / f"{log}.log").open("a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(argv)}   (exit {done.returncode})\n{done.stdout}\n")
        return done

    def start_make(self, target: str) -> subprocess.Popen[bytes]:
        """``make <target>`` in the background; its output goes to ``make-<target>.log``."""
        with (self.artifacts / f"make-{target}.log").open("ab") as out:
            return subprocess.Popen(
                [self.make, target, f"COMPOSE={self.compose}"], cwd=self.tree,
                env=self.environment, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def make_target(self, target: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """``make <target>`` in the copy, with this project's compose program."""
        return self.run([self.make, target, f"COMPOSE={self.compose}"], f"make-{target}", timeout)

    def dc(self, *args: str, log: str = "compose", timeout: float = 300) -> str:
        """``docker-compose <args>``; returns its output, raises if it fails."""
        done = self.run([self.compose, *args], log, timeout)
        if done.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} failed:\n{done.stdout[-3000:]}")
        return done.stdout

    def exec(self, service: str, *argv: str) -> subprocess.CompletedProcess[str]:
        """``docker-compose exec -T <service> <argv>`` (output in ``stdout``)."""
        return self.run([self.compose, "exec", "-T", service, *argv], f"exec-{service}", 120)

    def containers(self) -> dict[str, dict[str, Any]]:
        """Service -> ``docker inspect`` of its container, for every container of the project."""
        ids = subprocess.run(
            [self.docker, "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.name}"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.split()  # fmt: skip
        if not ids:
            return {}
        inspected = subprocess.run(
            [self.docker, "inspect", *ids], capture_output=True, text=True, check=True, timeout=60
        )
        out: dict[str, dict[str, Any]] = {}
        for container in json.loads(inspected.stdout):
            labels = container["Config"]["Labels"]
            if labels.get("com.docker.compose.oneoff") == "True":
                continue  # `docker-compose run` containers
            out[labels["com.docker.compose.service"]] = container
        return out

    def volumes(self) -> list[str]:
        """The named volumes of the project."""
        done = subprocess.run(
            [self.docker, "volume", "ls", "-q", "--filter",
             f"label=com.docker.compose.project={self.name}"],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return sorted(done.stdout.split())

    def keep_service_logs(self) -> None:
        """Write ``ps`` and every service's log to the artifacts folder (after a failure), once."""
        if (self.artifacts / "ps.log").exists():
            return
        self.run([self.compose, "ps"], "ps", 60)
        for service in self.containers():
            self.run([self.compose, "logs", "--no-color", "--timestamps", service],
                     f"service-{service}", 120)  # fmt: skip
