"""The Kubernetes API server, as the controller reaches it: in-cluster access and Job creation.

Authentication is the pod's service account, read as in-cluster clients do
(:meth:`ClusterAccess.in_cluster`): ``KUBERNETES_SERVICE_HOST``/``PORT``, and the ``token``,
``ca.crt`` and ``namespace`` files under ``/var/run/secrets/kubernetes.io/serviceaccount``;
the token is read on every call because the kubelet rotates it. :class:`JobClient` creates a
Job and never raises: the :class:`JobOutcome` says what the server answered.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from monitoring.settings import MonitorSettingsError

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "ClusterAccess",
    "JobClient",
    "JobOutcome",
    "KubernetesAccessError",
]

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where the kubelet mounts a pod's service-account token, CA and namespace."""


class KubernetesAccessError(MonitorSettingsError):
    """The controller is not set up to reach the API server (not in a pod, no token...)."""


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
