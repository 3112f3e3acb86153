r"""Create the MLflow users of the platform's components and grant each what its job needs.

The compose stack runs MLflow with its basic-auth app (``deploy/mlflow/basic_auth.ini``:
anonymous requests get 401, a user without a grant can do nothing). This script, run once as
MLflow's admin by the ``mlflow-users`` one-shot before the trainer starts, makes one user per
component and grants it a role on the registered model and the experiments:

==========  ========  ======================  ==============  =================================
user        role      registered model        experiments     why
==========  ========  ======================  ==============  =================================
trainer     deployer  MANAGE                  EDIT            registers versions, sets the
                                                              first champion
ci          deployer  MANAGE                  EDIT            registers candidates and starts
                                                              canaries (`mlplat deploy`)
controller  deployer  MANAGE                  EDIT            promotes or rejects the canary,
                                                              rolls back, retrains on drift
serving     reader    READ                    READ            reads aliases, tags and artifacts
==========  ========  ======================  ==============  =================================

MANAGE rather than EDIT on the model: ending a canary or a rollback removes an alias, and MLflow
counts removing an alias (and a version tag) as a delete. EDIT on the experiments lets a
deployer log runs and models in them; the user who creates an experiment or the registered
model also becomes its manager (MLflow does that itself).

It is safe to run again: missing users are created, every password is set to the current value
(this is how a rotated password in ``.env`` reaches MLflow), and each grant is made or corrected.
It changes nothing else, so users and grants added by hand stay. Standard library only::

    # the components' users; admin credentials and passwords from the environment
    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 MLFLOW_TRACKING_USERNAME=admin \
    MLFLOW_TRACKING_PASSWORD=... MLFLOW_TRAINER_PASSWORD=... MLFLOW_CI_PASSWORD=... \
    MLFLOW_CONTROLLER_PASSWORD=... MLFLOW_SERVING_PASSWORD=... python deploy/mlflow/access.py

    # a person who deploys with `mlplat deploy` under their own name (password asked for, or
    # from MLFLOW_NEW_USER_PASSWORD)
    python deploy/mlflow/access.py --user alice --role deployer
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL_NAME = "credit-default"
"""The registered model when MLPLAT_MODEL_NAME is unset (registry/settings.py's default)."""
MIN_PASSWORD_LENGTH = 16
PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "changethis", "change-this", "secret", "password", "admin"}
)
"""Passwords refused whatever their length, as the service and the controller refuse tokens."""


@dataclass(frozen=True)
class Grant:
    """One permission of a user on one resource (``*``: every resource of that type)."""

    resource_type: str
    resource_id: str
    permission: str

    def __str__(self) -> str:
        return f"{self.permission} on {self.resource_type} {self.resource_id}"


def role_grants(role: str, model_name: str) -> tuple[Grant, ...]:
    """The grants of a role; see the table in the module docstring.

    Args:
        role: ``deployer`` (registers versions and moves aliases) or ``reader`` (reads only).
        model_name: The registered model the platform serves.
    """
    if role == "deployer":
        return (
            Grant("registered_model", model_name, "MANAGE"),
            Grant("experiment", "*", "EDIT"),
        )
    if role == "reader":
        return (
            Grant("registered_model", model_name, "READ"),
            Grant("experiment", "*", "READ"),
        )
    raise ValueError(f"role must be 'deployer' or 'reader', not {role!r}")


@dataclass(frozen=True)
class ComponentUser:
    """A component's MLflow user, the variable its password comes from, and its role."""

    username: str
    password_variable: str
    role: str


COMPONENT_USERS = (
    ComponentUser("trainer", "MLFLOW_TRAINER_PASSWORD", "deployer"),
    ComponentUser("ci", "MLFLOW_CI_PASSWORD", "deployer"),
    ComponentUser("controller", "MLFLOW_CONTROLLER_PASSWORD", "deployer"),
    ComponentUser("serving", "MLFLOW_SERVING_PASSWORD", "reader"),
)


class AccessError(Exception):
    """Something the operator must fix; the message says what."""


class MlflowApiError(AccessError):
    """An MLflow REST call answered with an error."""

    def __init__(self, status: int, error_code: str, message: str, path: str) -> None:
        super().__init__(f"{path}: HTTP {status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code


def check_password(variable: str, password: str) -> None:
    """Refuse an empty, placeholder or short password, naming the variable it came from.

    Raises:
        AccessError: If the password is not acceptable.
    """
    if password.lower() in PLACEHOLDERS or len(password) < MIN_PASSWORD_LENGTH:
        raise AccessError(
            f"{variable} must be a secret of at least {MIN_PASSWORD_LENGTH} characters, not a "
            "placeholder; generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )


class MlflowAdmin:
    """The few calls of MLflow's auth REST API this script makes, as one (admin) user.

    Args:
        base_url: The tracking server, e.g. ``http://mlflow:5000``.
        username: The admin's user name.
        password: The admin's password.
        timeout_s: Timeout of each HTTP call.
    """

    def __init__(self, base_url: str, username: str, password: str, timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._authorization = f"Basic {token}"
        self.timeout_s = timeout_s

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """One REST call; the decoded JSON answer.

        Raises:
            MlflowApiError: On an HTTP error status (with MLflow's error code and message).
        """
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", self._authorization)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace")
            try:
                detail = json.loads(text)
            except json.JSONDecodeError:
                detail = {"error_code": "", "message": text.strip()[:300]}
            raise MlflowApiError(
                error.code, str(detail.get("error_code", "")), str(detail.get("message", "")), path
            ) from None
        answer: dict[str, Any] = json.loads(raw) if raw.strip() else {}
        return answer

    def wait_until_up(self, deadline_s: float) -> None:
        """Poll ``/health`` (open without credentials) until it answers.

        Raises:
            AccessError: If the server does not answer within ``deadline_s``.
        """
        started = time.monotonic()
        last: object = "no answer"
        while True:
            try:
                with urllib.request.urlopen(f"{self.base_url}/health", timeout=5) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except OSError as error:
                last = error
            if time.monotonic() - started > deadline_s:
                raise AccessError(
                    f"MLflow at {self.base_url} not up after {deadline_s:.0f} s: {last}"
                )
            time.sleep(1.0)

    def ensure_user(self, username: str, password: str) -> str:
        """Create the user, or set its password if it exists; what was done."""
        try:
            self.call("GET", "/api/2.0/mlflow/users/get", query={"username": username})
        except MlflowApiError as error:
            if error.status != 404:
                raise
            self.call(
                "POST", "/api/2.0/mlflow/users/create",
                {"username": username, "password": password},
            )  # fmt: skip
            return f"created user {username}"
        self.call(
            "PATCH", "/api/2.0/mlflow/users/update-password",
            {"username": username, "password": password},
        )  # fmt: skip
        return f"user {username} exists; password set"

    def granted(self, username: str) -> dict[tuple[str, str], str]:
        """The user's own grants: ``(resource_type, resource_id) -> permission``."""
        answer = self.call(
            "GET", "/api/3.0/mlflow/users/permissions/list", query={"username": username}
        )
        return {
            (row["resource_type"], row["resource_pattern"]): row["permission"]
            for row in answer.get("permissions", [])
            # Grants made to the user directly live in its own role; shared roles are left be.
            if str(row.get("role_name", "")).startswith("__user_")
        }

    def ensure_grant(self, username: str, grant: Grant) -> str:
        """Make ``grant`` the user's permission on its resource; what was done."""
        key = (grant.resource_type, grant.resource_id)
        current = self.granted(username).get(key)
        if current == grant.permission:
            return f"{username} has {grant}"
        target = {
            "username": username,
            "resource_type": grant.resource_type,
            "resource_id": grant.resource_id,
        }
        if current is not None:
            self.call("POST", "/api/3.0/mlflow/users/permissions/revoke", target)
        self.call(
            "POST", "/api/3.0/mlflow/users/permissions/grant",
            {**target, "permission": grant.permission},
        )  # fmt: skip
        return f"granted {username} {grant}" + (f" (was {current})" if current else "")


def set_up_user(
    admin: MlflowAdmin, username: str, password: str, grants: tuple[Grant, ...]
) -> None:
    """Create or update one user and its grants, printing one line per step."""
    print(admin.ensure_user(username, password), flush=True)
    for grant in grants:
        print(admin.ensure_grant(username, grant), flush=True)


def _required(environ: dict[str, str], variable: str) -> str:
    value = environ.get(variable, "")
    if not value:
        raise AccessError(f"{variable} is not set")
    return value


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """Set up the component users (or one named user); 0 on success, 2 on a problem to fix."""
    env = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--user", help="set up this one user instead of the components' users")
    parser.add_argument("--role", choices=("deployer", "reader"), help="the --user's role")
    parser.add_argument("--model", default=env.get("MLPLAT_MODEL_NAME") or DEFAULT_MODEL_NAME)
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for MLflow")
    args = parser.parse_args(argv)
    if bool(args.user) != bool(args.role):
        parser.error("--user and --role go together")
    try:
        admin = MlflowAdmin(
            _required(env, "MLFLOW_TRACKING_URI"),
            _required(env, "MLFLOW_TRACKING_USERNAME"),
            _required(env, "MLFLOW_TRACKING_PASSWORD"),
        )
        if args.user:
            password = env.get("MLFLOW_NEW_USER_PASSWORD") or getpass.getpass(
                f"password for {args.user}: "
            )
            check_password("the password", password)
            users = [(args.user, password, role_grants(args.role, args.model))]
        else:
            users = []
            for user in COMPONENT_USERS:
                password = _required(env, user.password_variable)
                check_password(user.password_variable, password)
                users.append((user.username, password, role_grants(user.role, args.model)))
        admin.wait_until_up(args.wait)
        for username, password, grants in users:
            set_up_user(admin, username, password, grants)
    except MlflowApiError as error:
        hint = " (check MLFLOW_TRACKING_USERNAME/PASSWORD)" if error.status == 401 else ""
        print(f"access: {error}{hint}", file=sys.stderr)
        return 2
    except AccessError as error:
        print(f"access: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
