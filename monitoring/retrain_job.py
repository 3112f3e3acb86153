"""A retrain trigger that starts the retraining run as a Kubernetes Job.

In compose the drift-triggered retrain is a command the controller starts detached beside
itself (:class:`~monitoring.controller.DriftRetrainTrigger`). On Kubernetes the controller is a
one-replica decision loop with a modest memory limit, and a training run belongs in its own pod:
:class:`KubernetesJobTrigger` keeps the same rule and the same durable record (it *wraps* a
``DriftRetrainTrigger`` that has no command: threshold, cool-down and the decisions file are
that class's), and when the rule fires it creates a Job through the API server::

    POST /apis/batch/v1/namespaces/{namespace}/jobs

The Job is a template (a YAML manifest, mounted from a ConfigMap) given a name of its own —
``<template name>-v<version>-<UTC time of the decision>``, so one decision is one Job and a
retry of it meets ``409 AlreadyExists`` instead of a second run — and annotations carrying the
drift share, the evidence path and the drifted features. ``{drift_share}`` and ``{evidence}``
in the containers' ``command`` and ``args`` are replaced, as in ``retrain_command``.

Authentication is the pod's service account, read as in-cluster clients do
(:meth:`ClusterAccess.in_cluster`): ``KUBERNETES_SERVICE_HOST``/``PORT``, and the ``token``,
``ca.crt`` and ``namespace`` files under ``/var/run/secrets/kubernetes.io/serviceaccount``;
the token is read on every call because the kubelet rotates it.

An API error (403, 409, 5xx, a timeout, an unreachable server) never raises: the decision says
that no retraining started and why, the recorded decision carries the answer, and the
cool-down is *not* started, so the next drift check asks again.
"""

from __future__ import annotations

import copy
import json
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import yaml

from interfaces.files import write_json_atomically
from monitoring.controller import DriftRetrainTrigger, RetrainDecision, RetrainRequest
from monitoring.settings import MonitorSettingsError

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "ClusterAccess",
    "JobClient",
    "JobOutcome",
    "KubernetesJobTrigger",
    "build_job",
    "job_name",
    "load_job_template",
]

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where the kubelet mounts a pod's service-account token, CA and namespace."""

ANNOTATION_PREFIX: Final = "mlplat/"
"""Prefix of the labels and annotations the trigger puts on the Jobs it creates."""

_MAX_NAME: Final = 63
"""A Job's name ends up in its pods' ``job-name`` label, which allows 63 characters."""

_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class KubernetesAccessError(MonitorSettingsError):
    """The controller is not set up to reach the API server (not in a pod, no token...)."""


# --- where the API server is -------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterAccess:
    """Where the API server is, and the credentials the controller uses with it.

    Attributes:
        api_url: Base URL of the API server.
        namespace: Namespace the Jobs are created in.
        token_file: The service-account token (re-read on every call: the kubelet rotates it).
        ca_file: The CA bundle that signed the API server's certificate; ``None`` trusts the
            system's CAs (or nothing, over plain ``http://``).
    """

    api_url: str
    namespace: str
    token_file: Path
    ca_file: Path | None

    @classmethod
    def in_cluster(
        cls,
        namespace: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        service_account_dir: Path | None = None,
    ) -> ClusterAccess:
        """The access of a pod: the Service's address from the environment, the mounted files.

        Args:
            namespace: Where to create Jobs; default the pod's own (the ``namespace`` file).
            environ: Environment to read ``KUBERNETES_SERVICE_HOST``/``PORT`` from
                (default ``os.environ``).
            service_account_dir: Where the token, ``ca.crt`` and ``namespace`` are mounted
                (default :data:`SERVICE_ACCOUNT_DIR`).

        Raises:
            KubernetesAccessError: If not in a pod, or the service account is not mounted.
        """
        env = os.environ if environ is None else environ
        service_account_dir = service_account_dir or SERVICE_ACCOUNT_DIR
        host = env.get("KUBERNETES_SERVICE_HOST", "").strip()
        port = env.get("KUBERNETES_SERVICE_PORT", "").strip()
        if not host or not port:
            raise KubernetesAccessError(
                "retrain_backend=kubernetes_job: KUBERNETES_SERVICE_HOST and "
                "KUBERNETES_SERVICE_PORT are not set, so this is not a pod; use "
                "retrain_backend=command outside a cluster"
            )
        token = service_account_dir / "token"
        if not token.is_file():
            raise KubernetesAccessError(
                f"retrain_backend=kubernetes_job: no service-account token at {token}; give the "
                "controller's pod a service account and automountServiceAccountToken: true"
            )
        if namespace is None:
            try:
                namespace = (service_account_dir / "namespace").read_text(encoding="utf-8")
            except OSError as exc:
                raise KubernetesAccessError(
                    f"retrain_job_namespace: unset and {service_account_dir / 'namespace'} is "
                    f"unreadable ({exc}); set MLPLAT_MONITOR_RETRAIN_JOB_NAMESPACE"
                ) from exc
            namespace = namespace.strip()
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        ca = service_account_dir / "ca.crt"
        return cls(f"https://{host}:{port}", namespace, token, ca if ca.is_file() else None)

    def token(self) -> str:
        """The current bearer token.

        Raises:
            OSError: If the token file cannot be read.
        """
        return self.token_file.read_text(encoding="utf-8").strip()

    def http_client(self, timeout_seconds: float) -> httpx.Client:
        """An HTTP client for the API server, verifying it against ``ca_file``.

        Args:
            timeout_seconds: Timeout of connecting, and of each read and write.
        """
        verify: ssl.SSLContext | bool = True
        if self.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.ca_file))
        timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 5.0))
        return httpx.Client(base_url=self.api_url, verify=verify, timeout=timeout)


# --- the Job -----------------------------------------------------------------------------------


def load_job_template(path: Path) -> dict[str, Any]:
    """Read and check the Job template, so a bad one stops the controller at start.

    Raises:
        MonitorSettingsError: Naming ``retrain_job_template`` and what is wrong.
    """
    where = f"retrain_job_template {str(path)!r}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MonitorSettingsError(f"{where}: {exc}") from exc
    if not isinstance(data, dict):
        raise MonitorSettingsError(f"{where}: must hold one Job manifest (a mapping)")
    if data.get("apiVersion") != "batch/v1" or data.get("kind") != "Job":
        raise MonitorSettingsError(f"{where}: must be apiVersion batch/v1, kind Job")
    metadata = data.get("metadata") or {}
    base = str(metadata.get("generateName") or metadata.get("name") or "").rstrip("-")
    if not _DNS_LABEL.match(base) or len(base) > 30:
        raise MonitorSettingsError(
            f"{where}: metadata.name (or generateName) must be a DNS label of at most 30 "
            f"characters, the prefix of the Jobs' names; got {base!r}"
        )
    pod = ((data.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = pod.get("containers")
    if not isinstance(containers, list) or not containers:
        raise MonitorSettingsError(f"{where}: spec.template.spec.containers must list a container")
    return data


def job_name(template: Mapping[str, Any], request: RetrainRequest) -> str:
    """The Job's name: the template's name, the champion's version and the decision's time.

    One decision gives one name, so creating it twice is refused (409) rather than run twice.
    """
    metadata = template.get("metadata") or {}
    base = str(metadata.get("generateName") or metadata.get("name")).rstrip("-")
    suffix = f"-v{request.model_version}-{request.at:%Y%m%d-%H%M%S}"
    return f"{base[: _MAX_NAME - len(suffix)]}{suffix}".lower()


def _substitute(value: object, values: Mapping[str, str]) -> object:
    if not isinstance(value, str):
        return value
    # str.replace, not str.format: a shell script's ${VAR} must pass through untouched.
    for key, text in values.items():
        value = value.replace("{" + key + "}", text)
    return value


def build_job(template: Mapping[str, Any], request: RetrainRequest, name: str) -> dict[str, Any]:
    """The Job to create: the template, named, annotated with the drift that asked for it.

    Args:
        template: A manifest accepted by :func:`load_job_template` (not modified).
        request: The drift that fired the trigger.
        name: The Job's name (:func:`job_name`).
    """
    job = copy.deepcopy(dict(template))
    metadata = dict(job.get("metadata") or {})
    metadata.pop("generateName", None)
    metadata.pop("namespace", None)  # the URL says where it goes
    metadata["name"] = name
    metadata["labels"] = {
        **(metadata.get("labels") or {}),
        f"{ANNOTATION_PREFIX}trigger": "drift",
        f"{ANNOTATION_PREFIX}model-version": str(request.model_version),
    }
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        f"{ANNOTATION_PREFIX}drift-share": f"{request.drift_share:.4f}",
        f"{ANNOTATION_PREFIX}evidence": request.evidence or "",
        f"{ANNOTATION_PREFIX}drifted-features": ",".join(request.drifted_features),
        f"{ANNOTATION_PREFIX}severity": request.severity,
        f"{ANNOTATION_PREFIX}decided-at": request.at.isoformat(),
    }
    job["metadata"] = metadata
    values = {"drift_share": f"{request.drift_share:.4f}", "evidence": request.evidence or ""}
    for container in job["spec"]["template"]["spec"]["containers"]:
        for key in ("command", "args"):
            if isinstance(container.get(key), list):
                container[key] = [_substitute(part, values) for part in container[key]]
    return job


# --- the API call ------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobOutcome:
    """What the API server answered to one Job creation.

    Attributes:
        created: Whether the Job now exists because of this call.
        name: The Job's name.
        namespace: Its namespace.
        reason: The answer, in words.
        status: The HTTP status, if the server answered.
        uid: The created Job's uid.
    """

    created: bool
    name: str
    namespace: str
    reason: str
    status: int | None = None
    uid: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable form."""
        return {
            "created": self.created,
            "name": self.name,
            "namespace": self.namespace,
            "reason": self.reason,
            "status": self.status,
            "uid": self.uid,
        }


_HINTS: Final[dict[int, str]] = {
    401: "the service-account token was refused",
    403: "forbidden: the controller's Role must allow create on jobs (batch) in this namespace",
    404: "not found: does the namespace exist?",
    409: "a Job of that name already exists: this decision already started a run",
    422: "the API server refused the Job template as invalid",
}


class JobClient:
    """Creates Jobs in one namespace through the API server.

    Args:
        http: Client with the API server's base URL, its CA and timeouts
            (:meth:`ClusterAccess.http_client`; tests pass one for a local server).
        access: Where the Jobs go and the token to send.
    """

    def __init__(self, http: httpx.Client, access: ClusterAccess) -> None:
        self.http = http
        self.access = access

    def create(self, job: Mapping[str, Any]) -> JobOutcome:
        """POST ``job``; never raises, the outcome says what happened."""
        name = str(job["metadata"]["name"])
        namespace = self.access.namespace
        path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
        try:
            token = self.access.token()
        except OSError as exc:
            return JobOutcome(False, name, namespace, f"service-account token unreadable: {exc}")
        try:
            response = self.http.post(
                path, json=dict(job), headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            where = f"{self.access.api_url}{path}"
            return JobOutcome(
                False,
                name,
                namespace,
                f"the API server at {where} did not answer: {type(exc).__name__}: {exc}",
            )
        body = _json(response)
        if response.status_code in (200, 201, 202):
            uid = (body.get("metadata") or {}).get("uid")
            return JobOutcome(
                True,
                name,
                namespace,
                f"created Job {namespace}/{name}",
                response.status_code,
                None if uid is None else str(uid),
            )
        message = str(body.get("message") or response.text[:300] or response.reason_phrase)
        hint = _HINTS.get(response.status_code)
        if hint is None and response.status_code >= 500:
            hint = "the API server failed"
        reason = f"the API server answered {response.status_code}"
        reason += f" ({hint})" if hint else ""
        return JobOutcome(False, name, namespace, f"{reason}: {message}", response.status_code)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# --- the trigger -------------------------------------------------------------------------------


class KubernetesJobTrigger:
    """The drift retrain trigger whose run is a Kubernetes Job (a :class:`RetrainTrigger`).

    Args:
        decider: Applies the rule and records the decision; it must have no ``command``
            (the Job replaces it).
        jobs: Creates the Job.
        template: The Job manifest (:func:`load_job_template`).

    Raises:
        ValueError: If ``decider`` would also start a command.
    """

    def __init__(
        self, decider: DriftRetrainTrigger, jobs: JobClient, template: Mapping[str, Any]
    ) -> None:
        if decider.command is not None:
            raise ValueError("KubernetesJobTrigger: the decider must not start a command too")
        self.decider = decider
        self.jobs = jobs
        self.template = template

    def __call__(self, request: RetrainRequest) -> RetrainDecision:
        """Apply the rule; when it fires, create the Job and record what the server said."""
        previous = _last_fired_at(self.decider.state_file)
        decision = self.decider(request)
        if not decision.fire:
            return decision
        name = job_name(self.template, request)
        outcome = self.jobs.create(build_job(self.template, request, name))
        record: dict[str, object] = {
            **decision.details,
            "fire": outcome.created,
            "job": outcome.to_dict(),
        }
        if outcome.created:
            self._amend(record, last_fired_at=request.at.isoformat())
            return RetrainDecision(True, f"{decision.reason}; {outcome.reason}", record)
        # Nothing runs, so the cool-down must not hold back the next drift check's retry.
        self._amend(record, last_fired_at=previous)
        reason = (
            f"{decision.reason}, but no retraining started: {outcome.reason}; the cool-down "
            "was not started, the next drift check asks again"
        )
        return RetrainDecision(False, reason, record)

    def _amend(self, record: Mapping[str, object], last_fired_at: str | None) -> None:
        """Replace the decider's last recorded decision with ``record`` (temp file, rename)."""
        path = self.decider.state_file
        data = json.loads(path.read_text(encoding="utf-8"))
        decisions = list(data.get("decisions") or [])
        data["decisions"] = [*decisions[:-1], dict(record)]
        data["last_fired_at"] = last_fired_at
        write_json_atomically(path, data)


def _last_fired_at(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    last = data.get("last_fired_at") if isinstance(data, dict) else None
    return last if isinstance(last, str) else None
