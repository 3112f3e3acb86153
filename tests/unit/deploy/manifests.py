"""Render the Kubernetes overlays (deploy/kubernetes) once per session and read what they hold.

Rendering needs kubectl (its built-in kustomize): the pinned one that
``deploy/kubernetes/install-tools.sh`` puts in ``.tools/bin`` (``make test`` runs it), else one
on PATH. Without either the tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import missing, require_tool

ROOT = Path(__file__).resolve().parents[3]
KUBERNETES = ROOT / "deploy" / "kubernetes"
TOOLS = ROOT / ".tools"
NODE_MODULES = TOOLS / "node_modules"
PINNED_KUBECTL = TOOLS / "bin" / "kubectl"
OVERLAYS = {
    path.parent.name: path.parent for path in KUBERNETES.glob("overlays/*/kustomization.yaml")
}
COMPONENTS = {
    path.parent.name: path.parent for path in KUBERNETES.glob("components/*/kustomization.yaml")
}

KUBERNETES_VERSION = "1.33.0"
"""The Kubernetes API the built-in kinds are validated against (kubernetes-validate's schemas)."""

NAMESPACE = "mlplat"
IMAGE = "mlplat:0.1.0"

Document = dict[str, Any]


class ManifestLoader(yaml.SafeLoader):
    """YAML as Kubernetes reads it.

    kustomize writes a lone ``=`` unquoted (``matchType: =``): YAML 1.2, which Kubernetes
    parses, reads it as a string, while PyYAML (YAML 1.1) reads the "value" tag.
    """


def _plain_string(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


ManifestLoader.add_constructor("tag:yaml.org,2002:value", _plain_string)


def kubectl() -> str:
    """The kubectl that renders: the pinned one if installed, else one on PATH."""
    if os.access(PINNED_KUBECTL, os.X_OK):
        return str(PINNED_KUBECTL)
    return require_tool("kubectl")


def _kustomize(directory: Path) -> tuple[Document, ...]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory}:\n{done.stderr}"
    return tuple(d for d in yaml.load_all(done.stdout, Loader=ManifestLoader) if d)


@functools.cache
def render(overlay: str) -> tuple[Document, ...]:
    """The documents of overlay ``overlay`` (deploy/kubernetes/overlays/NAME)."""
    return _kustomize(OVERLAYS[overlay])


@functools.cache
def render_with(overlay: str, *components: str) -> tuple[Document, ...]:
    """An overlay plus components it does not include yet (for example db-migrations).

    The overlay's namespace and labels apply, as when the components are listed in the overlay.
    """
    own = yaml.safe_load((OVERLAYS[overlay] / "kustomization.yaml").read_text())
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        kustomization = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": own["namespace"],
            "labels": own["labels"],
            "resources": [os.path.relpath(OVERLAYS[overlay], folder)],
            "components": [os.path.relpath(COMPONENTS[c], folder) for c in components],
        }
        (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        return _kustomize(folder)


def one(documents: tuple[Document, ...], kind: str, name: str) -> Document:
    """The document of ``kind`` named ``name``."""
    found = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def pod_templates(documents: tuple[Document, ...]) -> Iterator[tuple[Document, Document]]:
    """Each workload with its pod template (``metadata`` and ``spec``)."""
    for document in documents:
        kind, spec = document["kind"], document.get("spec", {})
        if kind in {"Deployment", "StatefulSet", "Job"}:
            yield document, spec["template"]
        elif kind == "CronJob":
            yield document, spec["jobTemplate"]["spec"]["template"]
        elif kind == "Rollout" and "template" in spec:
            yield document, spec["template"]


def containers(documents: tuple[Document, ...]) -> Iterator[tuple[Document, Document]]:
    """Each container and init container, with the workload it belongs to."""
    for workload, template in pod_templates(documents):
        pod = template["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield workload, container


def env(container: Mapping[str, Any]) -> dict[str, Any]:
    """A container's environment, name -> the ``value`` string or the ``valueFrom`` mapping."""
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])
    }


def secret_refs(container: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (Secret, key) pairs a container's environment reads."""
    return {
        (ref["name"], ref["key"])
        for item in container.get("env", [])
        if (ref := item.get("valueFrom", {}).get("secretKeyRef"))
    }


def node_models() -> Path:
    """The npm models of the custom resources, or skip (fail in CI) when not installed."""
    if not (NODE_MODULES / "@kubernetes-models" / "prometheus-operator").is_dir():
        missing("the @kubernetes-models packages are not in .tools (make test installs them)")
    return NODE_MODULES
