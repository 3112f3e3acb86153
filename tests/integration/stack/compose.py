"""The compose file as the tests read it: resolved by ``docker-compose config``, service by service.

``docker-compose config`` does what ``docker compose up`` would do to the file before it starts
anything (interpolates ``${VAR}`` from the env file, merges the YAML anchors, makes bind-mount
sources absolute), so the tests read the very commands and environments the containers get.
Both output styles are understood: Debian's docker-compose 1.29 (short ``src:dst:mode`` volumes
and ports) and Compose v2 (long mappings).
"""

from __future__ import annotations

import configparser
import importlib.util
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import yaml

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
MLFLOW_AUTH_DIR = REPO / "deploy" / "mlflow"
"""MLflow's auth settings (basic_auth.ini) and the job that makes its users (access.py)."""

SECRET_VARIABLES = (
    "POSTGRES_PASSWORD",
    "MLPLAT_SERVING_ADMIN_TOKEN",
    "MLPLAT_MONITOR_WEBHOOK_TOKEN",
    "GRAFANA_ADMIN_PASSWORD",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_SERVER_SECRET_KEY",
    "MLFLOW_TRAINER_PASSWORD",
    "MLFLOW_CI_PASSWORD",
    "MLFLOW_CONTROLLER_PASSWORD",
    "MLFLOW_SERVING_PASSWORD",
)
"""Variables the stack cannot start without; .env.example leaves them empty on purpose."""

MountKind = Literal["bind", "volume", "tmpfs"]


@dataclass(frozen=True)
class Mount:
    """One filesystem mount of a service: a host folder, a named volume or a tmpfs."""

    kind: MountKind
    source: str | None
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Service:
    """One resolved service of the compose file."""

    name: str
    spec: dict[str, Any]

    @property
    def image(self) -> str:
        """The image reference (for built services, the tag the build produces)."""
        return str(self.spec.get("image", ""))

    @property
    def built(self) -> bool:
        """Whether compose builds the image from this repository."""
        return "build" in self.spec

    @property
    def argv(self) -> list[str]:
        """Entrypoint followed by command, as the container starts them (image defaults aside)."""
        return _words(self.spec.get("entrypoint")) + _words(self.spec.get("command"))

    @property
    def has_entrypoint(self) -> bool:
        """Whether the compose file sets the entrypoint (else the image's own runs)."""
        return self.spec.get("entrypoint") is not None

    @property
    def environment(self) -> dict[str, str]:
        """The environment compose sets (values as strings)."""
        raw = self.spec.get("environment") or {}
        if isinstance(raw, list):  # KEY=VALUE items
            raw = dict(item.split("=", 1) for item in raw)
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}

    @property
    def healthcheck(self) -> list[str] | None:
        """The healthcheck's test (``["CMD", ...]`` or ``["CMD-SHELL", "..."]``), if any."""
        check = self.spec.get("healthcheck")
        if not check or check.get("disable"):
            return None
        test = check["test"]
        return ["CMD-SHELL", test] if isinstance(test, str) else [str(t) for t in test]

    @property
    def depends_on(self) -> dict[str, str]:
        """Dependencies and their conditions (the bare list form means ``service_started``)."""
        raw = self.spec.get("depends_on") or {}
        if isinstance(raw, list):
            return dict.fromkeys(raw, "service_started")
        return {
            name: str((cond or {}).get("condition", "service_started"))
            for name, cond in raw.items()
        }

    @property
    def one_shot(self) -> bool:
        """A job that runs to completion: never restarted."""
        return str(self.spec.get("restart", "no")) == "no"

    @property
    def profiles(self) -> list[str]:
        """Profiles that must be enabled for ``up`` to start it (none: always)."""
        return list(self.spec.get("profiles") or [])

    @property
    def published(self) -> list[tuple[str, int, int]]:
        """``(host_ip, host_port, container_port)`` of every published port."""
        out = []
        for port in self.spec.get("ports") or []:
            if isinstance(port, dict):
                out.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
                continue
            text = str(port).split("/", 1)[0]
            parts = text.split(":")
            if len(parts) == 3:
                out.append((parts[0], int(parts[1]), int(parts[2])))
            elif len(parts) == 2:
                out.append(("", int(parts[0]), int(parts[1])))
            else:
                out.append(("", int(parts[0]), int(parts[0])))
        return out

    @property
    def mounts(self) -> list[Mount]:
        """Volumes, bind mounts and tmpfs mounts."""
        out = []
        for volume in self.spec.get("volumes") or []:
            if isinstance(volume, dict):
                kind = volume["type"]
                out.append(
                    Mount(
                        kind, volume.get("source"), volume["target"], bool(volume.get("read_only"))
                    )
                )
                continue
            parts = str(volume).split(":")
            source, target = parts[0], parts[1]
            mode = parts[2] if len(parts) > 2 else "rw"
            short: MountKind = "bind" if source.startswith(("/", ".")) else "volume"
            out.append(Mount(short, source, target, "ro" in mode.split(",")))
        tmpfs = self.spec.get("tmpfs") or []
        for target in [tmpfs] if isinstance(tmpfs, str) else tmpfs:
            out.append(Mount("tmpfs", None, str(target).split(":", 1)[0]))
        return out


def _words(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def filled_env_file(path: Path, overrides: dict[str, str] | None = None) -> Path:
    """Write ``.env.example`` to ``path`` with its required secrets filled in, as a user would.

    Args:
        path: Where to write the env file.
        overrides: Other ``KEY=value`` lines to set (replacing the example's line for the key).
    """
    values = {
        name: f"test-{name.lower().replace('_', '-')}-0123456789" for name in SECRET_VARIABLES
    }
    values.update(overrides or {})
    lines = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        key = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if key and key.group(1) in values:
            line = f"{key.group(1)}={values.pop(key.group(1))}"
        lines.append(line)
    lines.extend(f"{k}={v}" for k, v in values.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def compose_command(tool: str, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``docker-compose`` on the repository's file with a clean environment."""
    return subprocess.run(
        [tool, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE),
         "--env-file", str(env_file), *args],
        cwd=REPO,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def resolved_services(tool: str, env_file: Path) -> dict[str, Service]:
    """Every service of the compose file as ``docker-compose config`` resolves it."""
    done = compose_command(tool, env_file, "config")
    if done.returncode != 0:
        raise AssertionError(f"docker-compose config failed:\n{done.stderr}")
    config = yaml.safe_load(done.stdout)
    return {name: Service(name, spec) for name, spec in config["services"].items()}


def raw_compose() -> dict[str, Any]:
    """The compose file as written (anchors merged by the YAML loader, nothing interpolated)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


def mlflow_access() -> ModuleType:
    """``deploy/mlflow/access.py``, imported from its file (``deploy/`` is not a package)."""
    name = "deploy_mlflow_access"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, MLFLOW_AUTH_DIR / "access.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def auth_config() -> configparser.SectionProxy:
    """The ``[mlflow]`` section of the basic-auth settings the stack ships."""
    config = configparser.ConfigParser()
    config.read(MLFLOW_AUTH_DIR / "basic_auth.ini")
    return config["mlflow"]
