"""The Kubernetes Job retrain trigger, against a real local HTTPS server standing in for the API.

No Kubernetes API server can run on these machines, so a small ``http.server`` on 127.0.0.1,
serving TLS with a self-signed certificate made here, answers ``POST
/apis/batch/v1/namespaces/{ns}/jobs`` as the API server would (201 with the object, or a
``Status`` for 403/409). The trigger finds it exactly as in a pod: ``KUBERNETES_SERVICE_HOST``
and ``_PORT``, and a service-account folder holding ``token``, ``ca.crt`` and ``namespace``.
What the real API server would add (admission, RBAC evaluation, the Job controller starting a
pod) is not exercised here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from ci.triggers import drift
from monitoring.controller import DriftRetrainTrigger, RetrainRequest
from monitoring.controller.kubernetes import ClusterAccess, JobClient, KubernetesAccessError
from monitoring.controller.retrain_job import KubernetesJobTrigger, load_job_template
from monitoring.settings import MonitorSettings, MonitorSettingsError
from monitoring.wiring import build_retrain_trigger

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TOKEN = "sa-token-for-the-test"
NAMESPACE = "mlplat"

TEMPLATE = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "name": "mlplat-retrain",
        "labels": {"app.kubernetes.io/name": "mlplat-train"},
    },
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "train",
                        "image": "mlplat:0.1.0",
                        "command": ["mlplat", "pipeline", "trigger", "drift"],
                        "args": ["--drift-share", "{drift_share}", "--evidence", "{evidence}"],
                    },
                    {
                        "name": "shell",
                        "image": "mlplat:0.1.0",
                        "command": ["sh", "-c", 'echo "${HOME}" {drift_share}'],
                    },
                ],
            }
        },
    },
}


# --- the stand-in API server ------------------------------------------------------------------


@dataclass
class FakeApiServer:
    """What the stand-in received, and what it answers next."""

    url: str
    port: int
    requests: list[dict[str, Any]] = field(default_factory=list)
    answer_status: int = 201
    answer_body: dict[str, Any] | None = None


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "server.crt", tmp / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def api(tmp_path: Path) -> Iterator[FakeApiServer]:
    """A threaded HTTPS server on 127.0.0.1 answering Job creations like the API server."""
    cert_file, key_file = _self_signed(tmp_path)
    state = FakeApiServer(url="", port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            state.requests.append(
                {"path": self.path, "authorization": self.headers["Authorization"], "body": body}
            )
            if state.answer_status == 201:
                answer = {**body, "metadata": {**body["metadata"], "uid": "uid-1"}}
            else:
                answer = state.answer_body or {}
            payload = json.dumps(answer).encode()
            self.send_response(state.answer_status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    state.url = f"https://127.0.0.1:{state.port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _service_account(tmp_path: Path, ca: Path | None) -> Path:
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text(TOKEN + "\n")
    (folder / "namespace").write_text(NAMESPACE)
    if ca is not None:
        (folder / "ca.crt").write_bytes(ca.read_bytes())
    return folder


def _trigger(tmp_path: Path, port: int, *, ca: Path | None) -> KubernetesJobTrigger:
    folder = _service_account(tmp_path, ca)
    environ = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(port)}
    access = ClusterAccess.in_cluster(environ=environ, service_account_dir=folder)
    decider = DriftRetrainTrigger(
        tmp_path / "state" / "retrain.json", 0.3, timedelta(hours=6), rule=drift
    )
    return KubernetesJobTrigger(decider, JobClient(access.http_client(5.0), access), TEMPLATE)


def request(at: datetime, share: float = 0.5) -> RetrainRequest:
    return RetrainRequest(
        model_version=3,
        drift_share=share,
        drifted_features=("amount", "hour"),
        severity="warning",
        reasons=("drift",),
        evidence="/var/lib/mlplat/drift-reports/fraud-v3-champion.html",
        at=at,
    )


def _state(trigger: KubernetesJobTrigger) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(trigger.decider.state_file.read_text())
    return data


# --- tests --------------------------------------------------------------------------------------


def test_a_fired_trigger_posts_the_named_annotated_job_with_the_bearer_token(
    api: FakeApiServer, tmp_path: Path
) -> None:
    """Drift over the threshold POSTs the template as a Job, named, annotated, authenticated.

    The request goes to the pod's namespace over TLS verified with the mounted ca.crt; the
    recorded decision carries the created Job.
    """
    trigger = _trigger(tmp_path, api.port, ca=tmp_path / "server.crt")
    decision = trigger(request(T0))

    assert decision.fire
    assert "created Job mlplat/mlplat-retrain-v3-20260301-090000" in decision.reason
    (sent,) = api.requests
    assert sent["path"] == f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
    assert sent["authorization"] == f"Bearer {TOKEN}"
    job = sent["body"]
    assert job["metadata"]["name"] == "mlplat-retrain-v3-20260301-090000"
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/name": "mlplat-train",
        "mlplat/trigger": "drift",
        "mlplat/model-version": "3",
    }
    annotations = job["metadata"]["annotations"]
    assert annotations["mlplat/drift-share"] == "0.5000"
    assert annotations["mlplat/evidence"] == request(T0).evidence
    assert annotations["mlplat/drifted-features"] == "amount,hour"
    train, shell = job["spec"]["template"]["spec"]["containers"]
    assert train["args"] == ["--drift-share", "0.5000", "--evidence", request(T0).evidence]
    assert shell["command"] == ["sh", "-c", 'echo "${HOME}" 0.5000']
    assert TEMPLATE["metadata"] == {  # the template itself is left as it was
        "name": "mlplat-retrain",
        "labels": {"app.kubernetes.io/name": "mlplat-train"},
    }

    state = _state(trigger)
    assert state["last_fired_at"] == T0.isoformat()
    (recorded,) = state["decisions"]
    assert recorded["fire"] is True
    assert recorded["job"]["created"] is True
    assert recorded["job"]["uid"] == "uid-1"
    assert recorded["job"]["name"] == "mlplat-retrain-v3-20260301-090000"


def test_the_rule_still_decides_threshold_and_cooldown_with_no_call_when_it_does_not_fire(
    api: FakeApiServer, tmp_path: Path
) -> None:
    """Below the threshold or inside the cool-down no Job is asked for; each call, its own name."""
    trigger = _trigger(tmp_path, api.port, ca=tmp_path / "server.crt")
    assert not trigger(request(T0, share=0.1)).fire
    assert trigger(request(T0 + timedelta(minutes=1))).fire
    cooled = trigger(request(T0 + timedelta(hours=1)))
    assert not cooled.fire
    assert "cool-down" in cooled.reason
    assert trigger(request(T0 + timedelta(hours=7, seconds=5))).fire
    assert [r["body"]["metadata"]["name"] for r in api.requests] == [
        "mlplat-retrain-v3-20260301-090100",
        "mlplat-retrain-v3-20260301-160005",
    ]
    assert len(_state(trigger)["decisions"]) == 4


def test_a_forbidden_answer_is_a_decision_that_says_so_and_keeps_the_cooldown_free(
    api: FakeApiServer, tmp_path: Path
) -> None:
    """A 403 gives fire=False naming the Role, is recorded, and the next check asks again."""
    api.answer_status = 403
    api.answer_body = {
        "kind": "Status",
        "status": "Failure",
        "reason": "Forbidden",
        "message": 'jobs.batch is forbidden: User "system:serviceaccount:mlplat:x" cannot create',
        "code": 403,
    }
    trigger = _trigger(tmp_path, api.port, ca=tmp_path / "server.crt")
    decision = trigger(request(T0))

    assert not decision.fire
    assert "no retraining started" in decision.reason
    assert "403" in decision.reason
    assert "Role must allow create on jobs" in decision.reason
    assert "jobs.batch is forbidden" in decision.reason
    state = _state(trigger)
    assert state["last_fired_at"] is None
    (recorded,) = state["decisions"]
    assert recorded["fire"] is False
    assert recorded["job"]["status"] == 403

    api.answer_status = 201
    assert trigger(request(T0 + timedelta(minutes=5))).fire
    assert len(api.requests) == 2


def test_an_existing_job_of_that_name_is_reported_as_such(
    api: FakeApiServer, tmp_path: Path
) -> None:
    """A 409 says the decision already started a run and does not fire again."""
    api.answer_status = 409
    api.answer_body = {"kind": "Status", "reason": "AlreadyExists", "message": "exists"}
    decision = _trigger(tmp_path, api.port, ca=tmp_path / "server.crt")(request(T0))
    assert not decision.fire
    assert "409 (a Job of that name already exists" in decision.reason


def test_an_unreachable_api_server_is_a_decision_not_a_crash(tmp_path: Path) -> None:
    """Nobody listening on the port gives fire=False naming the URL, and no cool-down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    trigger = _trigger(tmp_path, port, ca=None)
    decision = trigger(request(T0))
    assert not decision.fire
    assert f"https://127.0.0.1:{port}/apis/batch/v1/namespaces/mlplat/jobs" in decision.reason
    assert "did not answer: ConnectError" in decision.reason
    assert _state(trigger)["last_fired_at"] is None


def test_a_server_the_mounted_ca_did_not_sign_is_not_trusted(
    api: FakeApiServer, tmp_path: Path
) -> None:
    """With a ca.crt that did not sign the server's certificate, nothing is posted."""
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _ = _self_signed(other)
    decision = _trigger(tmp_path, api.port, ca=other_ca)(request(T0))
    assert not decision.fire
    assert "did not answer" in decision.reason
    assert api.requests == []


# --- settings and wiring ------------------------------------------------------------------------


def test_kubernetes_job_without_a_template_is_refused_naming_the_field() -> None:
    """retrain_backend=kubernetes_job needs retrain_job_template, and no retrain_command."""
    with pytest.raises(ValidationError, match="retrain_job_template: required"):
        MonitorSettings(retrain_backend="kubernetes_job")
    with pytest.raises(ValidationError, match="retrain_command: runs only with"):
        MonitorSettings(
            retrain_backend="kubernetes_job",
            retrain_job_template=Path("job.yaml"),
            retrain_command=("mlplat",),
        )
    with pytest.raises(ValidationError, match="retrain_job_namespace"):
        MonitorSettings(retrain_job_namespace="Not_A_Namespace")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list", "must hold one Job manifest"),
        ("apiVersion: v1\nkind: Pod\n", "must be apiVersion batch/v1, kind Job"),
        ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: Bad_Name}\n", "DNS label"),
        ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: ok}\nspec: {}\n", "containers"),
    ],
)
def test_a_bad_job_template_is_refused_naming_the_setting(
    tmp_path: Path, text: str, message: str
) -> None:
    """An unusable template stops the controller at start with a message naming the setting."""
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(MonitorSettingsError, match=f"retrain_job_template.*{message}"):
        load_job_template(path)


def test_the_settings_choose_the_trigger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command backend (default) is the local trigger; kubernetes_job wraps it, command-less.

    Outside a pod the kubernetes_job backend refuses to start, saying so.
    """
    local = build_retrain_trigger(
        MonitorSettings(home=tmp_path, retrain_command=("mlplat", "pipeline")), drift
    )
    assert isinstance(local, DriftRetrainTrigger)
    assert local.command == ("mlplat", "pipeline")

    template = tmp_path / "job.yaml"
    template.write_text(yaml.safe_dump(TEMPLATE))
    settings = MonitorSettings(
        home=tmp_path, retrain_backend="kubernetes_job", retrain_job_template=template
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubernetesAccessError, match="not a pod"):
        build_retrain_trigger(settings, drift)

    folder = _service_account(tmp_path, ca=None)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setattr("monitoring.controller.kubernetes.SERVICE_ACCOUNT_DIR", folder)
    remote = build_retrain_trigger(settings, drift)
    assert isinstance(remote, KubernetesJobTrigger)
    assert remote.decider.command is None
    assert remote.jobs.access.api_url == "https://10.0.0.1:443"
    assert remote.jobs.access.namespace == NAMESPACE
