"""The compose stack's MLflow refuses anyone without a user, and gives each user only its job.

Issue 10, item 5: four unauthenticated POSTs to the stack's MLflow made a rejected version
champion and put a canary at 100 %. Here the compose file's own ``mlflow`` service (its
entrypoint, command and environment, with ``deploy/mlflow/basic_auth.ini`` mounted as shipped)
runs outside Docker on fresh PostgreSQL databases, the ``mlflow-users`` one-shot creates the
users with its own command, and the moves of that attack are tried anonymously, with a wrong
password, and as each component's user (the credentials each compose service is given).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from registry import CANARY_WEIGHT_TAG, CHALLENGER, CHAMPION, STATUS_TAG
from tests.conftest import require_tool
from tests.integration.conftest import PostgresDatabaseFactory
from tests.integration.stack.compose import (
    Service,
    auth_config,
    filled_env_file,
    mlflow_access,
    resolved_services,
)
from tests.integration.stack.outside import (
    Loopback,
    Stack,
    container_paths,
    container_port,
    fresh_databases,
    poll,
)
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL_NAME = "credit-default"
"""The model the users are granted rights on (MLPLAT_MODEL_NAME is not set in the stack)."""
API = "/api/2.0/mlflow"
DEPLOYERS = {"trainer": "trainer", "controller": "controller", "bad-canary": "ci"}
"""Compose services that move aliases, and the MLflow user each is given."""

Credentials = tuple[str, str]


@dataclass
class AuthStack:
    """MLflow as the stack runs it, its users set up by the stack's own job."""

    stack: Stack
    services: dict[str, Service]
    url: str

    def credentials(self, service: str) -> Credentials:
        """The MLflow user and password compose gives ``service``."""
        env = self.services[service].environment
        return env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]

    def request(
        self, method: str, path: str, auth: Credentials | None, **kwargs: Any
    ) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", auth=auth, timeout=30.0, **kwargs)

    def run_users_job(self, environment: dict[str, str] | None = None) -> str:
        """Run the ``mlflow-users`` command once more; its output (it must succeed)."""
        argv = self.stack.loopback.argv("mlflow-users", self.services["mlflow-users"].argv)
        env = {**self.stack.environment("mlflow-users"), **(environment or {})}
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def mlflow_auth(
    tmp_path_factory: pytest.TempPathFactory, postgres_database: PostgresDatabaseFactory
) -> Iterator[AuthStack]:
    """The stack's ``mlflow`` service and ``mlflow-users`` job, run outside Docker."""
    compose = require_tool("docker-compose")
    root = tmp_path_factory.mktemp("mlflow-auth")
    services = resolved_services(compose, filled_env_file(root / "test.env"))
    databases = fresh_databases(services, postgres_database)
    server_port = sa.engine.make_url(next(iter(databases.values()))).port or 5432
    ports = {
        name: server_port if name == "postgres" else free_port()
        for name, service in services.items()
        if container_port(service) is not None
    }
    stack = Stack(Loopback(services, ports, databases, container_paths(services, root)), root)
    try:
        stack.start("mlflow")
        stack.wait_healthy("mlflow", 120)
        stack.start("mlflow-users")
        status = stack.wait_exit("mlflow-users", 120)
        assert status == 0, stack.tail("mlflow-users")
        stack.processes.pop("mlflow-users")
        yield AuthStack(stack, services, f"http://127.0.0.1:{ports['mlflow']}")
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def versions(mlflow_auth: AuthStack) -> tuple[str, str]:
    """Version 1 (champion) and version 2 (rejected) of the model, registered by the trainer."""
    trainer = mlflow_auth.credentials("trainer")
    created = mlflow_auth.request(
        "POST", f"{API}/registered-models/create", trainer, json={"name": MODEL_NAME}
    )
    assert created.status_code == 200, created.text
    experiment = mlflow_auth.request(
        "POST", f"{API}/experiments/create", trainer, json={"name": "stack-auth-test"}
    )
    assert experiment.status_code == 200, experiment.text
    numbers = []
    for _ in range(2):
        run = mlflow_auth.request(
            "POST", f"{API}/runs/create", trainer,
            json={"experiment_id": experiment.json()["experiment_id"]},
        )  # fmt: skip
        assert run.status_code == 200, run.text
        info = run.json()["run"]["info"]
        version = mlflow_auth.request(
            "POST", f"{API}/model-versions/create", trainer,
            json={"name": MODEL_NAME, "source": f"{info['artifact_uri']}/model",
                  "run_id": info["run_id"]},
        )  # fmt: skip
        assert version.status_code == 200, version.text
        numbers.append(version.json()["model_version"]["version"])
    champion, rejected = numbers
    for path, body in (
        ("registered-models/alias", {"name": MODEL_NAME, "alias": CHAMPION, "version": champion}),
        ("model-versions/set-tag",
         {"name": MODEL_NAME, "version": rejected, "key": STATUS_TAG, "value": "rejected"}),
    ):  # fmt: skip
        response = mlflow_auth.request("POST", f"{API}/{path}", trainer, json=body)
        assert response.status_code == 200, response.text
    return champion, rejected


def _attack(rejected: str) -> list[tuple[str, str, dict[str, str]]]:
    """The writes of issue 10's attack: a rejected champion, and a canary at 100 %."""
    return [
        ("POST", "registered-models/alias",
         {"name": MODEL_NAME, "alias": CHAMPION, "version": rejected}),
        ("POST", "registered-models/alias",
         {"name": MODEL_NAME, "alias": CHALLENGER, "version": rejected}),
        ("POST", "registered-models/set-tag",
         {"name": MODEL_NAME, "key": CANARY_WEIGHT_TAG, "value": "1.0"}),
        ("POST", "model-versions/set-tag",
         {"name": MODEL_NAME, "version": rejected, "key": STATUS_TAG, "value": "passed"}),
        ("DELETE", "registered-models/alias", {"name": MODEL_NAME, "alias": CHAMPION}),
    ]  # fmt: skip


def _deployment(stack: AuthStack) -> dict[str, Any]:
    """What would be served, read as the service reads it."""
    response = stack.request(
        "GET", f"{API}/registered-models/get", stack.credentials("serving"),
        params={"name": MODEL_NAME},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    model = response.json()["registered_model"]
    return {
        "aliases": {a["alias"]: a["version"] for a in model.get("aliases", [])},
        "tags": {t["key"]: t["value"] for t in model.get("tags", [])},
    }


def test_health_is_open_so_the_healthcheck_works_and_reads_need_a_user(
    mlflow_auth: AuthStack, versions: tuple[str, str]
) -> None:
    """``/health`` answers anyone (compose's healthcheck); reading an alias needs a login."""
    assert mlflow_auth.request("GET", "/health", None).status_code == 200
    anonymous = mlflow_auth.request(
        "GET", f"{API}/registered-models/alias", None,
        params={"name": MODEL_NAME, "alias": CHAMPION},
    )  # fmt: skip
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")


def test_the_unauthenticated_alias_moves_of_issue_10_are_refused(
    mlflow_auth: AuthStack, versions: tuple[str, str]
) -> None:
    """Rejected champion, canary alias, weight 1.0, status tag, alias delete: 401, none applied."""
    champion, rejected = versions
    before = _deployment(mlflow_auth)
    for method, path, body in _attack(rejected):
        response = mlflow_auth.request(method, f"{API}/{path}", None, json=body)
        assert response.status_code == 401, (path, body, response.text)
    after = _deployment(mlflow_auth)
    assert after == before
    assert after["aliases"] == {CHAMPION: champion}
    assert CANARY_WEIGHT_TAG not in after["tags"]


def test_a_wrong_password_is_refused_like_no_password(
    mlflow_auth: AuthStack, versions: tuple[str, str]
) -> None:
    """A deployer's name with a wrong password gets 401 on the champion move."""
    _, rejected = versions
    method, path, body = _attack(rejected)[0]
    wrong = ("controller", "not-its-password")
    response = mlflow_auth.request(method, f"{API}/{path}", wrong, json=body)
    assert response.status_code == 401


def test_the_service_user_reads_the_deployment_but_cannot_change_it(
    mlflow_auth: AuthStack, versions: tuple[str, str]
) -> None:
    """As ``serving``: aliases, tags and versions read (200); every move of the attack is 403."""
    champion, rejected = versions
    serving = mlflow_auth.credentials("serving")
    assert serving[0] == "serving"
    alias = mlflow_auth.request(
        "GET", f"{API}/registered-models/alias", serving,
        params={"name": MODEL_NAME, "alias": CHAMPION},
    )  # fmt: skip
    assert alias.status_code == 200, alias.text
    assert alias.json()["model_version"]["version"] == champion
    found = mlflow_auth.request(
        "GET", f"{API}/model-versions/search", serving, params={"filter": f"name='{MODEL_NAME}'"}
    )
    assert found.status_code == 200, found.text
    assert {v["version"] for v in found.json()["model_versions"]} == {champion, rejected}
    for method, path, body in _attack(rejected):
        response = mlflow_auth.request(method, f"{API}/{path}", serving, json=body)
        assert response.status_code == 403, (path, body, response.text)
    assert _deployment(mlflow_auth)["aliases"] == {CHAMPION: champion}


def test_the_service_user_cannot_grant_itself_more(
    mlflow_auth: AuthStack, versions: tuple[str, str]
) -> None:
    """Neither a grant on the model nor a new user: MLflow's admin API is not the service's."""
    serving = mlflow_auth.credentials("serving")
    grant = mlflow_auth.request(
        "POST", "/api/3.0/mlflow/users/permissions/grant", serving,
        json={"username": "serving", "resource_type": "registered_model",
              "resource_id": MODEL_NAME, "permission": "MANAGE"},
    )  # fmt: skip
    assert grant.status_code == 403, grant.text
    user = mlflow_auth.request(
        "POST", f"{API}/users/create", serving,
        json={"username": "intruder", "password": "intruder-password-0123"},
    )  # fmt: skip
    assert user.status_code == 403, user.text


@pytest.mark.parametrize("service", sorted(DEPLOYERS))
def test_the_deployers_start_and_end_a_canary(
    mlflow_auth: AuthStack, versions: tuple[str, str], service: str
) -> None:
    """As trainer, controller and CI: set the canary alias and weight, then remove both."""
    _, candidate = versions
    user = mlflow_auth.credentials(service)
    assert user[0] == DEPLOYERS[service]
    moves = [
        ("POST", "registered-models/alias",
         {"name": MODEL_NAME, "alias": CHALLENGER, "version": candidate}),
        ("POST", "registered-models/set-tag",
         {"name": MODEL_NAME, "key": CANARY_WEIGHT_TAG, "value": "0.1"}),
    ]  # fmt: skip
    for method, path, body in moves:
        response = mlflow_auth.request(method, f"{API}/{path}", user, json=body)
        assert response.status_code == 200, (service, path, response.text)
    live = _deployment(mlflow_auth)
    assert live["aliases"][CHALLENGER] == candidate
    assert live["tags"][CANARY_WEIGHT_TAG] == "0.1"
    ends = [
        ("DELETE", "registered-models/delete-tag", {"name": MODEL_NAME, "key": CANARY_WEIGHT_TAG}),
        ("DELETE", "registered-models/alias", {"name": MODEL_NAME, "alias": CHALLENGER}),
    ]
    for method, path, body in ends:
        response = mlflow_auth.request(method, f"{API}/{path}", user, json=body)
        assert response.status_code == 200, (service, path, response.text)
    ended = _deployment(mlflow_auth)
    assert CHALLENGER not in ended["aliases"]
    assert CANARY_WEIGHT_TAG not in ended["tags"]


def test_the_users_job_runs_again_and_applies_a_rotated_password(
    mlflow_auth: AuthStack, versions: tuple[str, str]
) -> None:
    """A second run changes no grant; with a new password in .env, the old one stops working."""
    again = mlflow_auth.run_users_job()
    assert "granted" not in again
    assert "serving has READ on registered_model credit-default" in again
    user, old = mlflow_auth.credentials("serving")
    new = "rotated-serving-password-0123456789"
    path = f"{API}/registered-models/get"
    params = {"name": MODEL_NAME}
    try:
        mlflow_auth.run_users_job({"MLFLOW_SERVING_PASSWORD": new})
        assert mlflow_auth.request("GET", path, (user, new), params=params).status_code == 200
        # A worker that verified the old password remembers it for the cache's TTL.
        cache_ttl_s = float(auth_config()["auth_cache_ttl_seconds"])
        poll(
            "the old password is refused",
            lambda: mlflow_auth.request("GET", path, (user, old), params=params).status_code == 401,
            deadline_s=cache_ttl_s + 30,
        )
    finally:
        mlflow_auth.run_users_job()
    assert mlflow_auth.request("GET", path, (user, old), params=params).status_code == 200


@pytest.mark.parametrize("password", ["", "changeme", "short-password"])
def test_the_users_job_refuses_a_placeholder_password_naming_the_variable(
    password: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Empty, placeholder or shorter than 16 characters: exit 2 before anything is sent."""
    access = mlflow_access()
    users = access.COMPONENT_USERS
    environ = {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",  # nothing listens: no call may be made
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": "admin-password-0123456789",
        **{u.password_variable: f"{u.username}-password-0123456789" for u in users},
        "MLFLOW_SERVING_PASSWORD": password,
    }
    assert access.main([], environ) == 2
    error = capsys.readouterr().err
    assert "MLFLOW_SERVING_PASSWORD" in error
    assert "Traceback" not in error
