"""The compose file, the Dockerfile and what they mount hold together, checked without an engine.

``docker-compose config -q`` validates the file as Compose would; the rest pins the rules the
stack is built on: every long-running service has a healthcheck, start order waits for health or
success, secrets are required from the environment, images are pinned, every mounted file exists
and every ``host:port`` a configuration file names is a compose service listening there.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from tests.integration.stack.compose import (
    COMPOSE_FILE,
    DOCKERFILE,
    DOCKERIGNORE,
    ENV_EXAMPLE,
    MLFLOW_AUTH_DIR,
    REPO,
    SECRET_VARIABLES,
    Service,
    auth_config,
    compose_command,
    filled_env_file,
    mlflow_access,
    raw_compose,
    resolved_services,
)
from tests.integration.stack.outside import container_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAIT_CONDITIONS = {"service_healthy", "service_completed_successfully"}
BUILD_ARGS = ("GIT_COMMIT", "EXTRA_CA_CERT")
"""The Dockerfile's optional build arguments, which compose passes from the shell."""
# host:port in a URL or a target list; the host is a name, not an address.
HOST_PORT = re.compile(r"(?<![\w.-])([a-z][a-z0-9-]*):(\d{2,5})(?!\d)")


@pytest.fixture(scope="module")
def compose_tool() -> str:
    return require_tool("docker-compose")


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return filled_env_file(tmp_path_factory.mktemp("stack-env") / "test.env")


@pytest.fixture(scope="module")
def services(compose_tool: str, env_file: Path) -> dict[str, Service]:
    return resolved_services(compose_tool, env_file)


def _bind(service: Service, target: str) -> Path:
    for mount in service.mounts:
        if mount.kind == "bind" and mount.target == target:
            assert mount.source is not None
            return Path(mount.source)
    raise AssertionError(f"{service.name} has no bind mount at {target}")


def _env_example_keys() -> dict[str, str]:
    """Keys documented in .env.example (set or commented out) and their example values."""
    keys: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if match:
            keys.setdefault(match.group(1), match.group(2))
    return keys


# --- compose ----------------------------------------------------------------------------------


def test_docker_compose_config_accepts_the_file_with_the_documented_env_file(
    compose_tool: str, env_file: Path
) -> None:
    """``docker-compose config -q`` passes once the secrets .env.example lists are filled in."""
    done = compose_command(compose_tool, env_file, "config", "-q")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("secret", SECRET_VARIABLES)
def test_compose_refuses_to_start_while_a_secret_is_empty(
    compose_tool: str, tmp_path: Path, secret: str
) -> None:
    """A copy of .env.example with one secret left empty is refused, naming the variable."""
    env_file = filled_env_file(tmp_path / "test.env", {secret: ""})
    done = compose_command(compose_tool, env_file, "config", "-q")
    assert done.returncode != 0
    assert f"set {secret} in .env" in done.stderr


def test_file_has_no_top_level_name_so_docker_compose_1_29_reads_it() -> None:
    """Only services, volumes, networks and extension fields at the top (no name, no version)."""
    keys = set(raw_compose())
    assert {k for k in keys if not k.startswith("x-")} <= {"services", "volumes", "networks"}


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Service]) -> None:
    """A service that is restarted when it stops must say when it is healthy."""
    missing = [s.name for s in services.values() if not s.one_shot and s.healthcheck is None]
    assert not missing


def test_start_order_waits_for_health_or_success(services: dict[str, Service]) -> None:
    """Each dependency waits for a healthcheck or a successful one-shot, never a bare start."""
    for service in services.values():
        for name, condition in service.depends_on.items():
            target = services[name]
            assert condition in WAIT_CONDITIONS, f"{service.name} -> {name}: {condition}"
            if condition == "service_healthy":
                assert target.healthcheck is not None, f"{name} has no healthcheck to wait for"
            else:
                assert target.one_shot, f"{name} is restarted, so it never completes"


def test_one_shots_are_awaited_by_their_dependents_or_run_on_demand(
    services: dict[str, Service],
) -> None:
    """The trainer gates the service on success; the demo job runs only when asked (profile)."""
    awaited = {
        name
        for s in services.values()
        for name, condition in s.depends_on.items()
        if condition == "service_completed_successfully"
    }
    for service in services.values():
        if service.one_shot:
            assert service.name in awaited or service.profiles, service.name
    assert "trainer" in awaited
    assert services["serving"].depends_on["trainer"] == "service_completed_successfully"
    assert services["bad-canary"].profiles == ["demo"]


def test_start_order_has_no_cycle(services: dict[str, Service]) -> None:
    """A topological order of the services exists (compose would refuse a cycle)."""
    order: list[str] = []
    pending = dict(services)
    while pending:
        ready = [n for n, s in pending.items() if set(s.depends_on) <= set(order)]
        assert ready, f"dependency cycle among {sorted(pending)}"
        order.extend(sorted(ready))
        for name in ready:
            del pending[name]
    assert order.index("trainer") < order.index("serving") < order.index("controller")


def test_secrets_are_required_from_the_environment_wherever_they_are_used() -> None:
    """Every use of a secret is ``${VAR:?message}``: compose stops instead of using a blank."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for secret in SECRET_VARIABLES:
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, f"{secret} is not used"
        assert all(use.startswith(":?") and len(use) > 2 for use in uses), (secret, uses)


def test_env_example_documents_every_variable_and_leaves_the_secrets_empty() -> None:
    """Each ``${VAR}`` of the compose file is in .env.example; the secrets there are blank.

    Build arguments aside: they come from the shell (see the build-args test below).
    """
    used = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", COMPOSE_FILE.read_text("utf-8")))
    documented = _env_example_keys()
    assert used - set(documented) - set(BUILD_ARGS) == set()
    assert {s: documented[s] for s in SECRET_VARIABLES} == dict.fromkeys(SECRET_VARIABLES, "")


def test_build_args_are_the_dockerfiles_optional_arguments_taken_from_the_shell() -> None:
    """The image's build passes GIT_COMMIT and EXTRA_CA_CERT, empty when unset.

    They come from the shell that runs ``make up``, not from .env: a commit changes with every
    build, and a PEM certificate spans lines, which docker-compose 1.29's .env cannot hold. The
    README documents them where it documents the Dockerfile's arguments.
    """
    args = raw_compose()["x-mlplat-image"]["build"]["args"]
    assert args == {name: f"${{{name}:-}}" for name in BUILD_ARGS}
    dockerfile = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in BUILD_ARGS:
        assert f'ARG {name}=""' in dockerfile, name
        assert f"{name}=" in readme, name


def test_build_args_reach_every_built_service_intact(compose_tool: str, env_file: Path) -> None:
    """Set in the environment, both arguments reach every built image; a PEM keeps its lines."""
    pem = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----"
    shell = {"PATH": "/usr/local/bin:/usr/bin:/bin", "GIT_COMMIT": "0123abc", "EXTRA_CA_CERT": pem}
    unset = resolved_services(compose_tool, env_file)
    done = subprocess.run(
        [compose_tool, "--project-directory", str(REPO), "-f", str(COMPOSE_FILE),
         "--env-file", str(env_file), "config"],
        cwd=REPO, env=shell, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]

    built = [name for name, service in unset.items() if service.built]
    assert built
    for name in built:
        assert unset[name].spec["build"]["args"] == dict.fromkeys(BUILD_ARGS, ""), name
        assert resolved[name]["build"]["args"] == {"GIT_COMMIT": "0123abc", "EXTRA_CA_CERT": pem}


def test_the_serving_env_example_is_merged_into_the_root_one() -> None:
    """Every setting serving/.env.example documents is also in the root .env.example."""
    serving_example = REPO / "serving" / ".env.example"
    if not serving_example.exists():
        pytest.skip("serving/.env.example is gone (merged)")
    keys = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", serving_example.read_text(), re.M))
    assert keys - set(_env_example_keys()) == set()


def test_images_are_pinned_to_a_version(services: dict[str, Service]) -> None:
    """No ``latest`` and no bare names; the built image is tagged with the project's version."""
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for service in services.values():
        _, _, tag = service.image.partition(":")
        if service.built:
            assert service.image == f"mlplat:{version}", service.name
        else:
            assert re.search(r"\d+\.\d+", tag), service.image
            assert "latest" not in tag, service.image


def test_ports_are_published_on_loopback_only(services: dict[str, Service]) -> None:
    """The demo's secrets are only as safe as its ports: nothing listens beyond 127.0.0.1."""
    published = [(s.name, p) for s in services.values() for p in s.published]
    assert published
    assert all(host == "127.0.0.1" for _, (host, _, _) in published), published


def test_healthchecks_use_tools_present_in_their_images(services: dict[str, Service]) -> None:
    """The Python image has python but no curl or wget; the Prometheus images have wget."""
    for service in services.values():
        test = service.healthcheck
        if test is None:
            continue
        program = test[1].split()[0] if test[0] == "CMD-SHELL" else test[1]
        if service.built:
            assert program == "python", service.name
        elif service.image.startswith("postgres:"):
            assert program == "pg_isready"
        else:
            assert program == "wget", service.name


def test_bind_mounts_point_at_files_of_the_repository(services: dict[str, Service]) -> None:
    """Every bind mount's source exists under the repository and is mounted read-only."""
    binds = [(s.name, m) for s in services.values() for m in s.mounts if m.kind == "bind"]
    assert binds
    for name, mount in binds:
        assert mount.source is not None
        source = Path(mount.source)
        assert source.exists(), f"{name}: {source}"
        assert source.is_relative_to(REPO), f"{name}: {source}"
        assert mount.read_only, f"{name}: {mount.target} should be read-only"


def test_named_volumes_are_declared(services: dict[str, Service]) -> None:
    """Volumes used by services are the declared ones, and each is used."""
    used = {m.source for s in services.values() for m in s.mounts if m.kind == "volume"}
    assert used == set(raw_compose()["volumes"])


# --- the configuration files the services mount -------------------------------------------------


def _addresses(text: str) -> Iterator[tuple[str, int]]:
    for host, port in HOST_PORT.findall(text):
        yield host, int(port)


def _check_addresses(text: str, where: str, services: dict[str, Service]) -> int:
    count = 0
    for host, port in _addresses(text):
        assert host in services, f"{where}: {host}:{port} is not a compose service"
        assert container_port(services[host]) == port, f"{where}: {host} listens elsewhere"
        count += 1
    return count


def test_prometheus_configuration_matches_the_stack(services: dict[str, Service]) -> None:
    """Targets and Alertmanager are compose services on their ports; rule files are mounted."""
    prometheus = services["prometheus"]
    folder = _bind(prometheus, "/etc/prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus.argv
    config_text = (folder / "prometheus.yml").read_text()
    assert _check_addresses(config_text, "prometheus.yml", services) >= 3
    config = yaml.safe_load(config_text)
    for rule_file in config["rule_files"]:
        assert (folder / rule_file).is_file(), rule_file
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["mlplat-serving"]["static_configs"][0]["targets"] == ["serving:8000"]


def test_alertmanager_configuration_matches_the_stack(services: dict[str, Service]) -> None:
    """Webhook URLs are services; the token file sits on a tmpfs its entrypoint writes."""
    alertmanager = services["alertmanager"]
    folder = _bind(alertmanager, "/etc/alertmanager")
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager.argv
    text = (folder / "alertmanager.yml").read_text()
    assert _check_addresses(text, "alertmanager.yml", services) >= 2
    config = yaml.safe_load(text)
    token_files = [
        webhook["http_config"]["authorization"]["credentials_file"]
        for receiver in config["receivers"]
        for webhook in receiver.get("webhook_configs", [])
        if "http_config" in webhook
    ]
    assert token_files
    tmpfs = [m.target for m in alertmanager.mounts if m.kind == "tmpfs"]
    script = " ".join(alertmanager.argv)
    for path in token_files:
        assert any(path.startswith(t + "/") for t in tmpfs), path
        assert f"> {path}" in script, f"the entrypoint does not write {path}"
    assert (
        alertmanager.environment["CONTROLLER_WEBHOOK_TOKEN"]
        == (services["controller"].environment["MLPLAT_MONITOR_WEBHOOK_TOKEN"])
    )


def test_grafana_provisioning_matches_the_mounts(services: dict[str, Service]) -> None:
    """Grafana cannot run here: its provisioning must point at what the stack mounts and serves.

    The dashboard's queries are checked against the exported metric names by
    tests/unit/monitoring/test_dashboard_metrics.py.
    """
    grafana = services["grafana"]
    provisioning = _bind(grafana, "/etc/grafana/provisioning")
    dashboards = _bind(grafana, "/var/lib/grafana/dashboards")
    datasources: list[dict[str, Any]] = []
    for path in sorted((provisioning / "datasources").glob("*.yml")):
        datasources += yaml.safe_load(path.read_text())["datasources"]
    assert [d["type"] for d in datasources] == ["prometheus"]
    _check_addresses(datasources[0]["url"], "grafana datasource", services)
    assert datasources[0]["url"] == "http://prometheus:9090"
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.yml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    assert [p["options"]["path"] for p in providers] == ["/var/lib/grafana/dashboards"]
    boards = sorted(dashboards.glob("*.json"))
    assert boards
    home = grafana.environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (dashboards / Path(home).relative_to("/var/lib/grafana/dashboards")).is_file()
    uid = datasources[0]["uid"]
    for board in boards:
        assert uid in board.read_text(), f"{board.name} does not use datasource {uid}"


def test_postgres_creates_every_database_the_services_use(services: dict[str, Service]) -> None:
    """Each ``…@postgres:5432/<db>`` URL names POSTGRES_DB or a database the init script makes."""
    postgres = services["postgres"]
    init = _bind(postgres, "/docker-entrypoint-initdb.d")
    created = {postgres.environment["POSTGRES_DB"]}
    for script in init.glob("*.sql"):
        created |= set(re.findall(r"(?im)^\s*CREATE DATABASE (\w+)", script.read_text()))
    used = {
        db
        for s in services.values()
        for value in s.environment.values()
        for db in re.findall(r"@postgres:5432/(\w+)", value)
    }
    assert used == created
    user = postgres.environment["POSTGRES_USER"]
    password = postgres.environment["POSTGRES_PASSWORD"]
    for service in services.values():
        for value in service.environment.values():
            for credentials in re.findall(r"://([^@/\s]+)@postgres:", value):
                assert credentials == f"{user}:{password}", service.name


# --- the image -----------------------------------------------------------------------------------


def _dockerfile() -> list[str]:
    """Dockerfile instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_is_multi_stage_pinned_and_non_root() -> None:
    """A builder and a runtime stage on one pinned slim base; the runtime runs unprivileged."""
    lines = _dockerfile()
    base = next(line for line in lines if line.startswith("ARG PYTHON_IMAGE="))
    assert re.fullmatch(r"ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm(@sha256:\w+)?", base)
    stages = [line for line in lines if line.startswith("FROM ")]
    assert stages == ["FROM ${PYTHON_IMAGE} AS builder", "FROM ${PYTHON_IMAGE} AS runtime"]
    runtime = lines[lines.index(stages[1]) :]
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(line.startswith("COPY --from=builder /opt/venv") for line in runtime)
    installs = [line for line in lines if "pip install" in line]
    assert installs
    assert all("-e " not in line for line in installs)
    assert any("-c constraints.txt" in line for line in installs)


def _dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out (Docker's rules: the last match wins)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").rstrip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_admits_what_the_dockerfile_copies_and_no_local_state() -> None:
    """Every COPY source reaches the build; .env, the venv and local stores never do."""
    patterns = _dockerignore_patterns()
    sources = []
    for line in _dockerfile():
        if line.startswith("COPY ") and "--from=" not in line:
            sources += [w for w in line.split()[1:-1] if not w.startswith("--")]
    assert "pyproject.toml" in sources
    assert "constraints.txt" in sources
    for source in sources:
        path = REPO / source
        files = [p for p in path.rglob("*.py")] if path.is_dir() else [path]
        assert files, source
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            if "__pycache__" not in relative:
                assert not dockerignored(relative, patterns), relative
    for private in (".env", ".venv/bin/python", ".mlplat/mlflow.db", ".git/HEAD",
                    "tests/conftest.py", "serving/__pycache__/app.cpython-311.pyc",
                    "serving/.env", "demo-output/summary.json"):  # fmt: skip
        assert dockerignored(private, patterns), private


def _packaged_folders() -> list[str]:
    """Top-level packages the wheel is built from: pyproject's ``include`` patterns, as folders."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    roots = {pattern.rstrip("*").rstrip(".") for pattern in patterns}
    return sorted(root for root in roots if (REPO / root / "__init__.py").is_file())


def test_the_image_builds_the_wheel_from_every_package_pyproject_includes() -> None:
    """Each package pyproject.toml packages is copied to the builder and admitted by .dockerignore.

    A package left out is silently missing from the wheel, and the image fails at its first
    import (``interfaces`` once did: every container exited with ModuleNotFoundError).
    """
    copied = set()
    for line in _dockerfile():
        words = line.split()
        if words[0] == "COPY" and "--from=builder" not in line:
            copied |= {w.rstrip("/") for w in words[1:-1] if not w.startswith("--")}
    patterns = _dockerignore_patterns()
    for package in _packaged_folders():
        assert package in copied, f"the Dockerfile does not COPY {package}/ into the builder"
        assert not dockerignored(f"{package}/__init__.py", patterns), package


def test_the_image_points_the_services_at_a_feature_contract_it_holds() -> None:
    """MLPLAT_CONTRACT names a file the runtime stage copies from the repository.

    The wheel carries no ``examples/``, so the contract's default path does not exist in the
    image: without this every service stops at start-up with "contract file ... does not exist".
    """
    runtime = "\n".join(_dockerfile()).split(" AS runtime", 1)[1].splitlines()
    env = next(line for line in runtime if line.startswith("ENV MLPLAT_CONTRACT="))
    target = env.split("=", 1)[1].strip('"')
    copy = next(
        line.split() for line in runtime if line.startswith("COPY ") and line.endswith(target)
    )
    assert (REPO / copy[1]).is_file()
    assert not dockerignored(copy[1], _dockerignore_patterns())


def test_tmpfs_mounts_belong_to_the_user_the_service_runs_as(services: dict[str, Service]) -> None:
    """Every tmpfs names its owner: a restarted container otherwise gets it back as root's.

    Docker 20.10 remounts a tmpfs on ``docker compose stop``/``start`` (or a restart after a
    crash) as root's with mode 755, so a non-root entrypoint can no longer write its file there;
    ``uid``/``gid`` options survive the restart (test_stack_on_docker.py restarts them).
    """
    expected = {"mlplat-image": "uid=10001,gid=10001", "prom/alertmanager": "uid=65534,gid=65534"}
    for service in services.values():
        for entry in service.spec.get("tmpfs") or []:
            owner = expected["mlplat-image" if service.built else service.image.split(":")[0]]
            assert f":{owner}," in entry, (service.name, entry)


def test_image_files_the_compose_commands_run_are_copied_into_the_image(
    services: dict[str, Service],
) -> None:
    """``/app/deploy/<script>`` in a command is a script the Dockerfile copies there."""
    copied = set()
    for line in _dockerfile():
        words = line.split()
        if words[0] == "COPY" and words[-1].rstrip("/") == "/app/deploy":
            copied |= {Path(w).name for w in words[1:-1] if not w.startswith("--")}
    used = {
        Path(word).name
        for s in services.values()
        if s.built
        for word in s.argv
        if word.startswith("/app/deploy/")
    }
    assert used
    assert used <= copied
    assert all((REPO / "deploy" / name).is_file() for name in used)


def test_make_targets_drive_the_stack() -> None:
    """``make up``, ``make down`` and ``make bad-canary`` run the matching compose commands."""
    make = require_tool("make")
    done = subprocess.run(
        [make, "-n", "-C", str(REPO), "up", "down", "bad-canary", "COMPOSE=compose"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    commands = done.stdout.splitlines()
    assert "compose up -d --build" in commands
    assert "compose down --remove-orphans" in commands
    assert "compose run --rm bad-canary" in commands


# --- MLflow access ---------------------------------------------------------------------------


def test_mlflow_runs_its_basic_auth_app_with_the_shipped_config_and_no_anonymous_rights(
    services: dict[str, Service],
) -> None:
    """``--app-name basic-auth``; the ini is the repository's, copied to a tmpfs at start."""
    mlflow = services["mlflow"]
    argv = mlflow.argv
    assert argv[argv.index("--app-name") + 1] == "basic-auth"
    assert _bind(mlflow, "/etc/mlflow") == MLFLOW_AUTH_DIR
    config_path = mlflow.environment["MLFLOW_AUTH_CONFIG_PATH"]
    tmpfs = [m.target for m in mlflow.mounts if m.kind == "tmpfs"]
    assert any(config_path.startswith(t + "/") for t in tmpfs), config_path
    script = " ".join(argv)
    assert "cat /etc/mlflow/basic_auth.ini" in script
    assert f"> {config_path}" in script
    ini = auth_config()
    assert ini["default_permission"] == "NO_PERMISSIONS"
    # The database password never sits in the repository: the URL comes from the environment.
    assert "database_uri" not in ini
    assert "admin_password" not in ini
    assert "@postgres:5432/mlflow_auth" in mlflow.environment["MLFLOW_AUTH_DATABASE_URI"]


def test_every_mlflow_client_logs_in_as_its_own_user(services: dict[str, Service]) -> None:
    """Each service that talks to MLflow has a user; the job creates exactly those users."""
    access = mlflow_access()
    users = {}
    for service in services.values():
        env = service.environment
        if "MLFLOW_TRACKING_URI" in env:
            assert env.get("MLFLOW_TRACKING_USERNAME"), f"{service.name} has no MLflow user"
            users[service.name] = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    job = services["mlflow-users"].environment
    admin = auth_config()["admin_username"]
    admin_password = services["mlflow"].environment["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert users.pop("mlflow-users") == (admin, admin_password)
    made = {u.username: job[u.password_variable] for u in access.COMPONENT_USERS}
    assert dict(users.values()) == made
    roles = {u.username: u.role for u in access.COMPONENT_USERS}
    assert users["serving"][0] == "serving"
    assert roles["serving"] == "reader"
    assert {roles[users[name][0]] for name in ("trainer", "controller", "bad-canary")} == {
        "deployer"
    }
    # The one-shot runs before anything logs in.
    assert services["trainer"].depends_on["mlflow-users"] == "service_completed_successfully"


def test_the_image_installs_mlflows_auth_extra() -> None:
    """The basic-auth app imports Flask-WTF: the image must install mlflow's ``auth`` extra."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(re.match(r"mlflow\[[^\]]*\bauth\b", d) for d in project["dependencies"])
    constraints = (REPO / "constraints.txt").read_text().lower()
    assert re.search(r"(?m)^flask-wtf==", constraints)
