"""The registry API on a real local SQLite MLflow store: every move, its event, its rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from registry import (
    CANARY_WEIGHT_TAG,
    Action,
    DeploymentState,
    EventStatus,
    InvalidMoveError,
    ModelNotFoundError,
    ModelRegistry,
    NoPreviousChampionError,
    RegistrySettings,
    StaleStateError,
    VersionNotFoundError,
    open_registry,
)
from tests.unit.registry.stores import LocalStores

pytestmark = pytest.mark.unit


def _actions(registry: ModelRegistry) -> list[str]:
    return [e.action.value for e in reversed(registry.history())]


def test_register_tags_lineage_and_writes_a_register_event(local: LocalStores) -> None:
    """Registering tags the version with its lineage and writes a REGISTER event."""
    version = local.register(data_digest="sha256:feed")
    info = local.registry.version(version)
    assert info.version == 1
    assert info.data_digest == "sha256:feed"
    assert info.code_version == "git:1234"
    assert info.gate_verdict == "passed"
    assert info.model_uri == f"models:/{local.model}/1"
    assert info.created_at.tzinfo is not None
    event = local.events.last(local.model, Action.REGISTER)
    assert event is not None
    assert event.to_version == 1
    assert event.details["mlplat.data_digest"] == "sha256:feed"
    assert event.actor == "tester"


def test_registering_the_same_model_uri_twice_returns_the_same_version(
    local: LocalStores,
) -> None:
    """Registering the same model URI twice returns the same version and one event."""
    uri, run_id = local.log_model()
    first = local.registry.register(uri, run_id, {"data_digest": "d"}, reason="trained")
    again = local.registry.register(uri, run_id, {"data_digest": "d"}, reason="re-run")
    assert again == first
    assert _actions(local.registry) == ["register"]


@pytest.mark.parametrize(
    ("lineage", "message"),
    [
        ({"Data Digest": "x"}, "lineage key 'Data Digest' must be lower-case"),
        ({"status": "ok"}, "lineage key 'status' is reserved"),
        ({"data_digest": "x" * 5001}, "MLflow allows 5000"),
    ],
)
def test_bad_lineage_is_refused_naming_the_key(
    local: LocalStores, lineage: dict[str, str], message: str
) -> None:
    """A mixed-case, reserved or too long lineage entry is refused by key, writing nothing."""
    with pytest.raises(InvalidMoveError, match=message):
        local.registry.register(*local.log_model(), lineage, reason="r")
    assert local.registry.history() == []


def test_every_alias_move_is_exactly_one_applied_event(local: LocalStores) -> None:
    """Every move of a whole lifecycle is exactly one applied event whose state matches."""
    reg = local.registry
    v1, v2, v3 = local.register(), local.register(), local.register()
    reg.bootstrap(v1, reason="first model")
    reg.start_canary(v2, 0.1, reason="gate passed", evidence="reports/gate-2.html")
    reg.set_canary_weight(0.5, reason="ramp", expected_challenger=v2)
    reg.promote(v2, reason="canary healthy", expected_champion=v1, details={"auc": 0.81})
    reg.set_challenger(v3, reason="next candidate")
    reg.reject(v3, reason="drift", details={"psi": 0.4})
    reg.rollback(reason="regression", expected_champion=v2)
    assert _actions(reg) == [
        "register", "register", "register",
        "bootstrap", "canary", "canary", "promote", "challenger", "reject", "rollback",
    ]  # fmt: skip
    events = reg.history()
    assert all(e.status is EventStatus.APPLIED for e in events)
    assert all(e.state == reg.events.get(e.id).state for e in events)
    promote = reg.events.last(local.model, Action.PROMOTE)
    assert promote is not None
    assert (promote.alias, promote.from_version, promote.to_version) == ("champion", 1, 2)
    assert promote.details == {"auc": 0.81}
    assert reg.state() == DeploymentState(champion=v1)
    assert reg.events.current_state(local.model) == reg.state()


def test_state_reports_versions_as_int_and_the_weight_from_the_tag(local: LocalStores) -> None:
    """State gives int versions, the weight read from its tag, and since-timestamps."""
    reg = local.registry
    v1, v2 = local.register(), local.register()
    reg.bootstrap(v1, reason="r")
    reg.start_canary(v2, 0.2, reason="r")
    raw = local.client.get_registered_model(local.model)
    assert raw.tags[CANARY_WEIGHT_TAG] == "0.2"
    state = reg.state()
    assert state == DeploymentState(champion=1, challenger=2, canary_weight=0.2)
    assert isinstance(state.champion, int)
    assert state.canary_active
    assert state.champion_since is not None
    assert state.challenger_since is not None


def test_repeating_a_move_is_a_no_op_without_a_second_event(local: LocalStores) -> None:
    """Repeating any move returns None and writes no second event."""
    reg = local.registry
    v1, v2 = local.register(), local.register()
    assert reg.bootstrap(v1, reason="r") is not None
    assert reg.bootstrap(v1, reason="r") is None
    assert reg.start_canary(v2, 0.1, reason="r") is not None
    assert reg.start_canary(v2, 0.1, reason="r") is None
    assert reg.set_canary_weight(0.1, reason="r") is None
    assert reg.promote(v2, reason="r", expected_champion=v1) is not None
    assert reg.promote(v2, reason="r", expected_champion=v1) is None
    assert reg.rollback(reason="r", expected_champion=v2) is not None
    assert reg.rollback(reason="r", expected_champion=v2) is None
    assert reg.reject(v2, reason="r") is not None
    assert reg.reject(v2, reason="r") is None
    assert _actions(reg).count("promote") == 1
    assert _actions(reg).count("rollback") == 1
    assert len(reg.history()) == 7


def test_a_stale_promote_is_refused_and_moves_nothing(local: LocalStores) -> None:
    """A promote expecting an outdated champion is refused and moves nothing."""
    reg = local.registry
    v1, v2, v3 = local.register(), local.register(), local.register()
    reg.bootstrap(v1, reason="r")
    reg.promote(v2, reason="someone else promoted first")
    with pytest.raises(StaleStateError, match=r"expected champion 1 .* registry has 2"):
        reg.promote(v3, reason="r", expected_champion=v1)
    assert reg.state().champion == v2


def test_a_weight_change_for_a_replaced_challenger_is_refused(local: LocalStores) -> None:
    """A weight change aimed at a replaced challenger is refused and changes nothing."""
    reg = local.registry
    v1, v2, v3 = local.register(), local.register(), local.register()
    reg.bootstrap(v1, reason="r")
    reg.start_canary(v3, 0.1, reason="r")
    with pytest.raises(StaleStateError, match="expected challenger 2"):
        reg.set_canary_weight(0.5, reason="ramp", expected_challenger=v2)
    assert reg.state().canary_weight == 0.1


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan")])
def test_canary_weight_bounds_are_enforced_with_a_readable_error(
    local: LocalStores, weight: float
) -> None:
    """An out-of-range canary weight is refused with the bounds, leaving the weight at 0."""
    reg = local.registry
    v1, v2 = local.register(), local.register()
    reg.bootstrap(v1, reason="r")
    reg.set_challenger(v2, reason="r")
    with pytest.raises(InvalidMoveError, match="canary_weight must be between 0 and 1 inclusive"):
        reg.set_canary_weight(weight, reason="r")
    assert reg.state().canary_weight == 0.0


def test_rollback_without_a_previous_champion_says_why(local: LocalStores) -> None:
    """A rollback with no previous champion is refused, saying which is champion."""
    reg = local.registry
    reg.bootstrap(local.register(), reason="r")
    with pytest.raises(NoPreviousChampionError, match="champion is 1 and no previous champion"):
        reg.rollback(reason="r")


def test_rejecting_the_challenger_cuts_traffic_and_blocks_it_for_good(local: LocalStores) -> None:
    """A rejected challenger loses its traffic and can never serve again."""
    reg = local.registry
    v1, v2 = local.register(), local.register()
    reg.bootstrap(v1, reason="r")
    reg.start_canary(v2, 0.3, reason="r")
    event = reg.reject(v2, reason="error rate doubled", evidence="reports/drift-9.html")
    assert event is not None
    assert event.alias == "challenger"
    assert reg.state() == DeploymentState(champion=v1)
    assert reg.version(v2).rejected
    with pytest.raises(InvalidMoveError, match="is rejected and cannot serve"):
        reg.set_challenger(v2, reason="r")
    with pytest.raises(InvalidMoveError, match="is rejected and cannot serve"):
        reg.promote(v2, reason="r")
    with pytest.raises(InvalidMoveError, match="is rejected and cannot serve"):
        reg.start_canary(v2, 0.1, reason="r")


def test_the_champion_cannot_be_rejected(local: LocalStores) -> None:
    """Rejecting the champion is refused, saying to roll back or promote first."""
    reg = local.registry
    v1 = local.register()
    reg.bootstrap(v1, reason="r")
    with pytest.raises(InvalidMoveError, match="roll back or promote another version first"):
        reg.reject(v1, reason="r")


def test_unknown_model_and_version_are_readable_errors(local: LocalStores) -> None:
    """An unknown model or version raises a not-found error naming it."""
    with pytest.raises(ModelNotFoundError, match=rf"registered model '{local.model}' does not"):
        local.registry.state()
    with pytest.raises(ModelNotFoundError):
        local.registry.bootstrap(1, reason="r")
    local.register()
    with pytest.raises(VersionNotFoundError, match=rf"model '{local.model}' has no version 7"):
        local.registry.bootstrap(7, reason="r")


def test_a_move_needs_a_reason(local: LocalStores) -> None:
    """A move with a blank reason is refused."""
    with pytest.raises(InvalidMoveError, match="reason must say why; it is recorded"):
        local.registry.bootstrap(local.register(), reason=" ")


def test_model_uri_for_versions_and_aliases(local: LocalStores) -> None:
    """model_uri gives version and alias URIs and refuses a malformed alias."""
    reg = local.registry
    assert reg.model_uri(3) == f"models:/{local.model}/3"
    assert reg.model_uri("3") == f"models:/{local.model}/3"
    assert reg.model_uri("champion") == f"models:/{local.model}@champion"
    with pytest.raises(InvalidMoveError, match="version_or_alias must be"):
        reg.model_uri("champ ion")


def test_versions_lists_every_version_oldest_first(local: LocalStores) -> None:
    """versions() lists every version oldest first, with its aliases."""
    local.register()
    local.register()
    local.registry.set_challenger(2, reason="r")
    infos = local.registry.versions()
    assert [i.version for i in infos] == [1, 2]
    assert infos[1].aliases == ("challenger",)


def test_model_name_with_a_quote_is_refused(local: LocalStores) -> None:
    """A model name containing a quote is refused."""
    with pytest.raises(InvalidMoveError, match="model_name must be non-empty with no quotes"):
        ModelRegistry(local.client, local.events, "it's", "tester")


def test_register_needs_a_reason_before_anything_is_written(local: LocalStores) -> None:
    """Registering without a reason is refused before MLflow or the log is written."""
    with pytest.raises(InvalidMoveError, match="reason must say why"):
        local.registry.register(*local.log_model(), {}, reason="")
    assert local.registry.reconcile() == []


def test_open_registry_keeps_everything_under_home(
    tmp_path: Path, mlflow_client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_registry keeps the event log and artifacts under home, nothing in the cwd."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    settings = RegistrySettings(
        home=home,
        tracking_uri=str(mlflow_client.tracking_uri),  # the session's store: migrations are slow
        experiment_name="open-registry-test",
        model_name="credit-open",
        actor="tester",
    )
    registry = open_registry(settings)
    assert (home / "events.db").is_file()
    assert (home / "artifacts").is_dir()
    experiment = mlflow_client.get_experiment_by_name("open-registry-test")
    assert experiment is not None
    assert experiment.artifact_location == (home / "artifacts").absolute().as_uri()
    assert registry.model_name == "credit-open"
    assert registry.actor == "tester"
    assert registry.events.history("credit-open") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]  # no ./mlruns
