"""Models serve through the compiled path when it scores like the reference, else the reference.

``/model`` says per variant which path serves and why; the setting turns the compiled path off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.sklearn
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

from features import FEATURE_NAMES, FEATURES, CategoricalFeature
from pipeline.compiled import TOLERANCE, CompileCheck
from pipeline.data import generate
from pipeline.model_io import SKOPS_TRUSTED_TYPES
from registry import EventStore, ModelRegistry
from serving.app import create_app
from serving.batcher import positive_probabilities
from serving.cache import CachedDeployment, ModelCache
from serving.deployment import DesiredState, RegistryModelSource
from serving.inference_path import (
    NOT_RECORDED,
    TURNED_OFF,
    Recorded,
    ServedModel,
    check_rows,
    choose_path,
)
from serving.settings import ServingSettings

from .conftest import AUTH, AppClient, ConstantModel, FakeSource, TestClient, predict_body, record

pytestmark = pytest.mark.unit

NUMERIC = [f.name for f in FEATURES if not isinstance(f, CategoricalFeature)]
CATEGORICAL = [f.name for f in FEATURES if isinstance(f, CategoricalFeature)]


def rows_of(n: int, seed: int) -> list[list[Any]]:
    """``n`` generated feature rows in contract order, with some nulls and an unseen category."""
    frame = generate(n, seed)[list(FEATURE_NAMES)].astype(object)
    frame = frame.where(frame.notna(), None)
    frame.loc[: n // 10, "debt_to_income"] = None
    frame.loc[n // 10 : n // 5, "loan_purpose"] = "yacht"
    return frame.to_numpy().tolist()


@pytest.fixture(scope="module")
def polynomial_model() -> Pipeline:
    """A pipeline the compiler cannot handle: PolynomialFeatures on the numeric block."""
    data = generate(600, 21)
    numeric = Pipeline([
        ("impute", SimpleImputer()),
        ("poly", PolynomialFeatures(2)),
        ("scale", StandardScaler()),
    ])  # fmt: skip
    pre = ColumnTransformer([
        ("num", numeric, NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
    ])  # fmt: skip
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=1000))])
    return model.fit(data[list(FEATURE_NAMES)], data["default"])


class _OffByAMillionth(Pipeline):
    """The platform's pipeline whose reference probabilities moved by 1e-6 since registration."""

    def predict_proba(self, X: Any, **params: Any) -> Any:  # noqa: N803
        return super().predict_proba(X, **params) + 1e-6


def test_a_prediction_through_the_compiled_path_equals_the_reference_path(
    small_model: Pipeline,
) -> None:
    """On 500 rows with nulls and unseen categories, both paths agree within the tolerance."""
    served = choose_path(small_model, enabled=True)
    assert served.path == "compiled"
    rows = rows_of(500, 3)
    compiled = np.array(positive_probabilities(served, rows))
    reference = np.array(positive_probabilities(small_model, rows))
    assert np.max(np.abs(compiled - reference)) <= TOLERANCE
    one = positive_probabilities(served, rows[7:8])
    assert abs(one[0] - reference[7]) <= TOLERANCE


def test_the_load_check_scores_the_example_with_each_null_and_unseen_category() -> None:
    """Every nullable feature is missing once and every categorical one unseen once."""
    rows = check_rows()
    nullable = [f for f in FEATURES if f.nullable]
    assert len(rows) == 1 + len(nullable) + len(CATEGORICAL)
    for i, feature in enumerate(FEATURES):
        if feature.nullable:
            assert any(row[i] is None for row in rows[1:])


@pytest.mark.parametrize(
    ("recorded", "path", "reason"),
    [
        (CompileCheck(True, "max |difference| 0 on 200 rows"), "compiled",
         "registration: max |difference| 0 on 200 rows"),
        (CompileCheck(False, "not compilable: block 'x'"), "reference",
         "refused at registration: not compilable: block 'x'"),
        (None, "reference", NOT_RECORDED),
    ],
)  # fmt: skip
def test_a_registry_version_serves_compiled_only_when_its_registration_said_yes(
    small_model: Pipeline, recorded: CompileCheck | None, path: str, reason: str
) -> None:
    """The registration's verdict rules: yes and a passing load check, else the reference."""
    served = choose_path(Recorded(small_model, recorded), enabled=True)
    assert served.path == path
    assert reason in served.reason
    assert served.reference is small_model


def test_a_compiled_path_that_no_longer_matches_at_load_is_refused(small_model: Pipeline) -> None:
    """Registration said yes, but here the two paths differ by 1e-6: the reference serves."""
    drifted = _OffByAMillionth(small_model.steps)
    served = choose_path(Recorded(drifted, CompileCheck(True, "ok")), enabled=True)
    assert served.path == "reference"
    assert served.reason.startswith("refused on load: differs from the reference")


def test_turned_off_every_model_serves_through_the_reference(small_model: Pipeline) -> None:
    """With compiled inference off, even a model that qualifies takes the reference path."""
    served = choose_path(Recorded(small_model, CompileCheck(True, "ok")), enabled=False)
    assert (served.path, served.reason) == ("reference", TURNED_OFF)


def test_model_shows_the_compiled_path_and_predictions_match_the_reference(
    client: TestClient, small_model: Pipeline
) -> None:
    """The real model serves compiled; /predict gives the reference pipeline's probability."""
    champion = client.get("/model").json()["champion"]
    assert champion["inference_path"] == "compiled"
    assert champion["inference_path_reason"].startswith("checked on load: max |difference|")
    body = predict_body(record(), record(debt_to_income=None, employment_years=None))
    answers = client.post("/predict", json=body).json()["predictions"]
    rows = [[r[name] for name in FEATURE_NAMES] for r in body["records"]]
    expected = positive_probabilities(small_model, rows)
    assert len(answers) == 2
    assert all(
        abs(a["probability"] - e) <= TOLERANCE for a, e in zip(answers, expected, strict=True)
    )


def test_a_pipeline_the_compiler_cannot_handle_serves_through_the_reference_and_says_why(
    settings: ServingSettings, polynomial_model: Pipeline
) -> None:
    """PolynomialFeatures: /model names the step as the reason; /predict still answers."""
    source = FakeSource({1: polynomial_model}, DesiredState(champion=1))
    with TestClient(create_app(settings, model_source=source)) as service:
        champion = service.get("/model").json()["champion"]
        assert champion["inference_path"] == "reference"
        assert "PolynomialFeatures" in champion["inference_path_reason"]
        assert champion["inference_path_reason"].startswith("refused on load: not compilable")
        answer = service.post("/predict", json=predict_body()).json()["predictions"][0]
    expected = positive_probabilities(polynomial_model, [[record()[n] for n in FEATURE_NAMES]])
    assert answer["probability"] == expected[0]


def test_the_setting_turns_the_compiled_path_off_for_every_variant(
    make_client: AppClient, source: FakeSource
) -> None:
    """MLPLAT_SERVING_COMPILED_INFERENCE=false: champion and canary both on the reference."""
    source.state = DesiredState(champion=1, challenger=2, canary_weight=0.2)
    service = make_client(compiled_inference=False)
    model = service.get("/model").json()
    for variant in ("champion", "canary"):
        assert model[variant]["inference_path"] == "reference"
        assert model[variant]["inference_path_reason"] == TURNED_OFF


def test_the_setting_is_read_from_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compiled path is on by default and off with MLPLAT_SERVING_COMPILED_INFERENCE=false."""
    monkeypatch.setenv("MLPLAT_SERVING_ENVIRONMENT", "dev")
    assert ServingSettings().compiled_inference is True
    monkeypatch.setenv("MLPLAT_SERVING_COMPILED_INFERENCE", "false")
    assert ServingSettings().compiled_inference is False


def test_a_model_that_is_not_a_pipeline_serves_as_loaded_with_the_reason(
    client: TestClient, source: FakeSource
) -> None:
    """A stand-in model is refused by the compiler by shape; the canary view says so."""
    source.state = DesiredState(champion=1, challenger=2, canary_weight=0.2)
    assert client.post("/admin/reload", headers=AUTH).status_code == 200
    canary = client.get("/model").json()["canary"]
    assert canary["inference_path"] == "reference"
    assert "not a two-step Pipeline" in canary["inference_path_reason"]
    assert isinstance(source.models[2], ConstantModel)


def test_the_cache_keeps_the_registration_verdict_across_a_restart(
    small_model: Pipeline, tmp_path: Path
) -> None:
    """A version refused at registration stays on the reference path when served from cache."""
    refused = choose_path(Recorded(small_model, CompileCheck(False, "no")), enabled=True)
    unrecorded = choose_path(small_model, enabled=True)
    cache = ModelCache(tmp_path / "cache")
    cache.save(CachedDeployment(1, 2, 0.1), {1: refused, 2: unrecorded})
    found = cache.read()
    assert found is not None
    models = found[1]
    assert isinstance(models[1], Recorded)
    assert choose_path(models[1], enabled=True).reason == "refused at registration: no"
    assert not isinstance(models[2], Recorded | ServedModel)
    assert choose_path(models[2], enabled=True).path == "compiled"


def test_the_registry_source_reads_the_verdict_from_the_models_files(
    small_model: Pipeline, tmp_path: Path
) -> None:
    """A version whose MLmodel records ``mlplat.compiled=no`` loads with that verdict."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("serving", artifact_location=(tmp_path / "a").as_uri())
    check = CompileCheck(False, "not compilable: a test said so")
    mlflow.sklearn.save_model(
        small_model,
        tmp_path / "model",
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
        metadata=check.tags(),
    )
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    events.create_schema()
    registry = ModelRegistry(client, events, "credit-default", "tester")
    version = registry.register(
        f"runs:/{run.info.run_id}/model", run.info.run_id, {"gate_verdict": "passed"}, reason="t"
    )
    loaded = RegistryModelSource(registry).load(version)
    assert isinstance(loaded, Recorded)
    assert loaded.check == check
    served = choose_path(loaded, enabled=True)
    assert served.path == "reference"
    assert served.reason == f"refused at registration: {check.reason}"


class _DownAfterFirst(FakeSource):
    """A registry source that answers until ``down`` is set, then refuses connections."""

    down = False

    def desired(self) -> DesiredState:
        if self.down:
            raise ConnectionRefusedError("registry down")
        return super().desired()


def test_a_restart_from_the_cache_serves_each_version_through_the_same_path(
    settings: ServingSettings, small_model: Pipeline
) -> None:
    """Refused at registration before the restart, still refused (and said so) from the cache."""
    recorded = Recorded(small_model, CompileCheck(False, "differs from the reference: test"))
    source = _DownAfterFirst({1: recorded}, DesiredState(champion=1))
    with TestClient(create_app(settings, model_source=source)) as first:
        before = first.get("/model").json()["champion"]
    source.down = True
    with TestClient(create_app(settings, model_source=source)) as restarted:
        after = restarted.get("/model").json()
    assert after["from_cache"] is True
    assert after["champion"]["inference_path"] == before["inference_path"] == "reference"
    assert after["champion"]["inference_path_reason"] == (
        "refused at registration: differs from the reference: test"
    )
