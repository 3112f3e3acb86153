"""Only allowed versions serve: rejected or ungated versions are refused, the canary is capped.

Whoever moved the alias (an attacker with MLflow access, a hand edit), the service reads the
versions' tags on every poll and refuses what the gate did not pass, keeping what it served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from interfaces.routing import bucket
from registry import DeploymentState, ModelRegistry, ModelVersionInfo
from registry.admission import MAX_CANARY_WEIGHT, Veto, clamp_weight, vet
from serving.app import create_app
from serving.deployment import DesiredState, RegistryModelSource
from serving.settings import ServingSettings
from tests.unit.serving.conftest import (
    AUTH,
    ConstantModel,
    FakeSource,
    predict_body,
    record,
)

pytestmark = pytest.mark.unit

PASSED = {"mlplat.gate_verdict": "passed"}
REJECTED = {"mlplat.gate_verdict": "passed", "mlplat.status": "rejected"}


def _info(version: int, tags: dict[str, str]) -> ModelVersionInfo:
    return ModelVersionInfo(
        version=version, run_id=None, source=f"models:/m-{version}",
        model_uri=f"models:/credit/{version}", tags=tags, aliases=(),
        created_at=datetime(2026, 1, 1, tzinfo=UTC), status="READY",
    )  # fmt: skip


@dataclass
class TaggedRegistry:
    """The two reads the service makes of the registry: the state and each version's tags."""

    state_now: DeploymentState
    tags: dict[int, dict[str, str]] = field(default_factory=dict)

    def state(self) -> DeploymentState:
        return self.state_now

    def version(self, version: int) -> ModelVersionInfo:
        return _info(version, self.tags[version])

    def model_uri(self, version: int) -> str:
        return f"models:/credit/{version}"


def _versions_served(client: TestClient) -> tuple[int | None, int | None, float]:
    model = client.get("/model").json()
    return (
        model["champion"] and model["champion"]["version"],
        model["canary"] and model["canary"]["version"],
        model["canary_weight"],
    )


@pytest.fixture
def tagged() -> TaggedRegistry:
    """Version 1 champion and gated; the test moves aliases and tags as an outsider would."""
    return TaggedRegistry(DeploymentState(champion=1), {1: PASSED, 2: PASSED, 3: PASSED})


@pytest.fixture
def registry_client(
    settings: ServingSettings, tagged: TaggedRegistry
) -> Iterator[Callable[..., TestClient]]:
    """A started service following ``tagged`` through the real :class:`RegistryModelSource`."""
    models = {1: ConstantModel(0.2), 2: ConstantModel(0.7), 3: ConstantModel(0.9)}

    def loader(uri: str) -> Any:
        return models[int(uri.rsplit("/", 1)[1])]

    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        source = RegistryModelSource(cast(ModelRegistry, tagged), loader=loader)
        app = create_app(settings.model_copy(update=overrides), model_source=source)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_a_rejected_version_is_refused_and_the_gated_one_passes() -> None:
    """vet() reads the status tag first, then the gate verdict."""
    assert vet(_info(1, PASSED)) is None
    rejected = vet(_info(2, REJECTED))
    assert rejected is not None
    assert rejected.reason == "rejected"
    assert "mlplat.status=rejected" in rejected.detail


@pytest.mark.parametrize("tags", [{}, {"mlplat.gate_verdict": "failed"}])
def test_a_version_without_a_passed_gate_verdict_is_refused(tags: dict[str, str]) -> None:
    """No tag or any verdict but 'passed' means the gate never let it through."""
    veto = vet(_info(4, tags))
    assert veto is not None
    assert veto.reason == "gate_not_passed"
    assert "mlplat.gate_verdict" in veto.detail
    assert "never passed" in veto.detail


def test_a_weight_above_the_cap_is_clamped_with_the_reason() -> None:
    """1.0 becomes the cap and says so; a weight within the cap is left alone."""
    assert clamp_weight(0.3, 0.5) == (0.3, None)
    weight, veto = clamp_weight(1.0, 0.5)
    assert weight == 0.5
    assert veto == Veto(
        "canary_weight_above_cap",
        "the registry asks for canary weight 1, above the platform's cap of 0.5; serving 0.5",
    )


def test_a_rejected_champion_set_behind_the_platforms_back_is_not_served(
    registry_client: Callable[..., TestClient], tagged: TaggedRegistry
) -> None:
    """The alias moves to a rejected version: v1 keeps serving, /model and /ready say why."""
    client = registry_client()
    tagged.tags[2] = REJECTED
    tagged.state_now = DeploymentState(champion=2)
    reload = client.post("/admin/reload", headers=AUTH).json()
    assert reload["converged"] is False
    assert _versions_served(client) == (1, None, 0.0)
    (refusal,) = client.get("/model").json()["refusals"]
    assert (refusal["variant"], refusal["version"], refusal["reason"]) == (
        "champion", 2, "rejected",
    )  # fmt: skip
    assert client.get("/ready").json()["refusals"] == [refusal]
    assert (
        client.post("/predict", json=predict_body()).json()["predictions"][0]["model_version"] == 1
    )
    metrics = client.get("/metrics").text
    assert (
        'mlplat_model_load_refusals_total{model_version="2",reason="rejected",'
        'variant="champion"} 1.0' in metrics
    )
    assert 'mlplat_model_load_refusing{reason="rejected",variant="champion"} 1.0' in metrics


def test_a_refusal_is_counted_once_however_many_polls_see_it(
    registry_client: Callable[..., TestClient], tagged: TaggedRegistry
) -> None:
    """The counter counts refusals, not polls; the flag stays up while it lasts, then drops."""
    client = registry_client()
    tagged.tags[3] = {}
    tagged.state_now = DeploymentState(champion=3)
    for _ in range(3):
        client.post("/admin/reload", headers=AUTH)
    metrics = client.get("/metrics").text
    assert (
        'mlplat_model_load_refusals_total{model_version="3",reason="gate_not_passed",'
        'variant="champion"} 1.0' in metrics
    )
    tagged.state_now = DeploymentState(champion=1)
    client.post("/admin/reload", headers=AUTH)
    assert client.get("/model").json()["refusals"] == []
    assert (
        'mlplat_model_load_refusing{reason="gate_not_passed",variant="champion"} 0.0'
        in client.get("/metrics").text
    )


def test_an_ungated_canary_gets_no_traffic(
    registry_client: Callable[..., TestClient], tagged: TaggedRegistry
) -> None:
    """For a refused canary, the champion serves everyone."""
    client = registry_client()
    tagged.tags[3] = {"mlplat.gate_verdict": "failed"}
    tagged.state_now = DeploymentState(champion=1, challenger=3, canary_weight=0.3)
    client.post("/admin/reload", headers=AUTH)
    assert _versions_served(client) == (1, None, 0.0)
    assert [r["reason"] for r in client.get("/model").json()["refusals"]] == ["gate_not_passed"]


def test_a_canary_weight_past_the_cap_is_clamped(
    registry_client: Callable[..., TestClient], tagged: TaggedRegistry
) -> None:
    """A canary at 100% (past the 0.5 cap) serves at 0.5, and /model says why."""
    client = registry_client()
    tagged.state_now = DeploymentState(champion=1, challenger=2, canary_weight=1.0)
    client.post("/admin/reload", headers=AUTH)
    assert _versions_served(client) == (1, 2, 0.5)
    (refusal,) = client.get("/model").json()["refusals"]
    assert refusal["reason"] == "canary_weight_above_cap"
    assert "cap of 0.5" in refusal["detail"]
    above = next(f"c-{i}" for i in range(10_000) if bucket(f"c-{i}", "2") >= 0.5)
    below = next(f"c-{i}" for i in range(10_000) if bucket(f"c-{i}", "2") < 0.5)
    body = {"records": [record(customer_id=above), record(customer_id=below)]}
    predictions = client.post("/predict", json=body).json()["predictions"]
    assert [p["variant"] for p in predictions] == ["champion", "canary"]


def test_a_canary_rejected_after_loading_is_not_promoted_by_moving_the_alias(
    registry_client: Callable[..., TestClient], tagged: TaggedRegistry
) -> None:
    """Promotion reuses the loaded model: the tags are checked on every poll, not only on load."""
    client = registry_client()
    tagged.state_now = DeploymentState(champion=1, challenger=2, canary_weight=0.2)
    client.post("/admin/reload", headers=AUTH)
    assert _versions_served(client) == (1, 2, 0.2)
    tagged.tags[2] = REJECTED
    tagged.state_now = DeploymentState(champion=2)
    client.post("/admin/reload", headers=AUTH)
    assert _versions_served(client) == (1, None, 0.0)


def test_a_service_started_on_a_rejected_champion_is_not_ready_and_says_why(
    registry_client: Callable[..., TestClient], tagged: TaggedRegistry
) -> None:
    """With nothing served before, a refused champion leaves the service not ready."""
    tagged.tags[1] = REJECTED
    client = registry_client()
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert "mlplat.status=rejected" in ready.json()["reason"]
    assert client.post("/predict", json=predict_body()).status_code == 503


def test_a_source_without_a_gate_serves_what_it_is_given(
    client: TestClient, source: FakeSource
) -> None:
    """A local source (file, test fake) has no tags: nothing is vetoed unless it says so."""
    source.state = DesiredState(champion=2, vetoes={2: Veto("rejected", "tagged rejected")})
    client.post("/admin/reload", headers=AUTH)
    assert _versions_served(client) == (1, None, 0.0)
    source.state = DesiredState(champion=2)
    client.post("/admin/reload", headers=AUTH)
    assert _versions_served(client) == (2, None, 0.0)


def test_the_default_cap_is_the_platforms() -> None:
    """The service's cap is the platform's, the one the deploy guardrail enforces too."""
    assert ServingSettings.model_fields["max_canary_weight"].default == MAX_CANARY_WEIGHT
