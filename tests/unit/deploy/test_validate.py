"""Every rendered manifest is valid, unknown fields refused.

Built-in kinds against the Kubernetes API's schemas in strict mode, custom resources against
their CRDs' schemas.

No API server runs here, so this is what `kubectl apply --dry-run=server` would catch short of
admission webhooks and the CRDs' CEL rules.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.conftest import require_tool
from tests.unit.deploy.manifests import (
    KUBERNETES,
    KUBERNETES_VERSION,
    OVERLAYS,
    Document,
    node_models,
    one,
    render,
)

pytestmark = pytest.mark.unit

CUSTOM_KINDS = {
    "Rollout",
    "AnalysisTemplate",
    "ServiceMonitor",
    "PrometheusRule",
    "AlertmanagerConfig",
}
RENDERINGS = [*OVERLAYS]


def rendered(name: str) -> tuple[Document, ...]:
    return render(name)


def _built_in(document: Document) -> bool:
    group = document["apiVersion"].rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def _validate_crds(documents: list[Document]) -> tuple[int, list[dict[str, Any]]]:
    node = require_tool("node")
    done = subprocess.run(
        [node, str(KUBERNETES / "validate-crds.mjs"), str(node_models())],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode in {0, 1, 2}, done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("name", RENDERINGS)
def test_built_in_kinds_validate_strictly(name: str) -> None:
    """Each built-in object matches the Kubernetes API's schema, unknown fields refused."""
    checked = 0
    for document in rendered(name):
        if not _built_in(document):
            continue
        where = f"{document['kind']}/{document['metadata']['name']}"
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{where}: {error.message} at {'/'.join(map(str, error.path))}")
        checked += 1
    assert checked >= 20


def test_strict_validation_catches_a_misspelt_field() -> None:
    """The check can fail: a misspelt probe, which a lenient check would accept."""
    deployment = copy.deepcopy(one(render("dev"), "Deployment", "mlplat-serving"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", RENDERINGS)
def test_custom_resources_validate_against_their_crd_schemas(name: str) -> None:
    """Custom resources match the Argo Rollouts v1.9 and Prometheus Operator v0.91 API types.

    Rollout, AnalysisTemplate, ServiceMonitor, PrometheusRule and AlertmanagerConfig, with no
    unknown field.
    """
    custom = [d for d in rendered(name) if not _built_in(d)]
    status, results = _validate_crds(custom)
    problems = [r for r in results if r["errors"] or r["unknown"]]
    assert status == 0, json.dumps(problems, indent=2)
    assert len(results) == len(custom)


def test_production_has_every_custom_kind() -> None:
    """The CRD check covers every custom kind the platform uses."""
    kinds = {d["kind"] for d in render("production") if not _built_in(d)}
    assert kinds == CUSTOM_KINDS


def test_crd_check_catches_unknown_fields_and_wrong_types() -> None:
    """The check can fail: misspelt fields, and a number where a duration string goes.

    The misspelt field of a nested Alertmanager route is caught too, though the Go types make
    that field free-form JSON.
    """
    documents = copy.deepcopy([d for d in render("production") if not _built_in(d)])
    rollout = next(d for d in documents if d["kind"] == "Rollout")
    rollout["spec"]["strategy"]["canary"]["stepz"] = []
    config = next(d for d in documents if d["kind"] == "AlertmanagerConfig")
    config["spec"]["route"]["routes"][0]["groupByy"] = ["job"]
    config["spec"]["route"]["routes"][1]["repeatInterval"] = 5
    status, results = _validate_crds(documents)
    assert status == 1
    found = {r["kind"]: r for r in results}
    assert found["Rollout"]["unknown"] == ["/spec/strategy/canary/stepz"]
    assert found["AlertmanagerConfig"]["unknown"] == ["/spec/route/routes/0/groupByy"]
    assert any("routes/1/repeatInterval" in e for e in found["AlertmanagerConfig"]["errors"])


def test_crd_check_refuses_a_kind_it_has_no_schema_for() -> None:
    """A custom kind outside the models is reported, not passed."""
    status, results = _validate_crds(
        [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}]
    )
    assert status == 2
    assert results[0]["errors"] == ["no schema for example.com/v1 Widget"]


def test_tools_are_the_pinned_ones() -> None:
    """The install script pins what the tests say they validate against."""
    script = (KUBERNETES / "install-tools.sh").read_text()
    assert "@kubernetes-models/argo-rollouts@2.0.0" in script
    assert "@kubernetes-models/prometheus-operator@6.0.0" in script
    package = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    assert (package / f"v{KUBERNETES_VERSION}-local-strict").is_dir()
