"""MLflow: each model version's reference sample, and where its drift reports are attached."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from mlflow.exceptions import MlflowException

from interfaces.tags import REFERENCE_ARTIFACT
from monitoring.sources.base import ReferenceNotFound, SourceUnavailable
from registry import ModelRegistry, RegistryError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["RunArtifacts"]


class RunArtifacts:
    """The reference sample of each model version, and its drift reports, in its MLflow run.

    Args:
        client: An MLflow client on the registry's tracking store.
        registry: The registry, to find each version's training run.
    """

    def __init__(self, client: MlflowClient, registry: ModelRegistry) -> None:
        self._client = client
        self._registry = registry

    def _run_id(self, version: int) -> str:
        try:
            run_id = self._registry.version(version).run_id
        except RegistryError as exc:
            raise SourceUnavailable("mlflow", str(exc), "registry_unreachable") from exc
        if not run_id:
            raise ReferenceNotFound(f"model version {version} has no training run recorded")
        return run_id

    def reference(self, version: int) -> pd.DataFrame:
        """The reference sample logged with ``version``'s training run.

        Raises:
            ReferenceNotFound: If the run has no ``reference/reference.parquet``.
            SourceUnavailable: If MLflow cannot be reached.
        """
        run_id = self._run_id(version)
        missing = f"model version {version} (run {run_id}) has no {REFERENCE_ARTIFACT}"
        folder, _, _ = REFERENCE_ARTIFACT.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="mlplat-reference-") as tmp:
            try:
                # Listing first tells "not logged" apart from "store unreachable", which a
                # failed download does not (its message is the same for both).
                listed = {f.path for f in self._client.list_artifacts(run_id, folder)}
                if REFERENCE_ARTIFACT not in listed:
                    raise ReferenceNotFound(missing)
                local = Path(self._client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp))
            except (MlflowException, OSError) as exc:
                raise SourceUnavailable(
                    "mlflow", f"cannot download {REFERENCE_ARTIFACT}: {exc}", "registry_unreachable"
                ) from exc
            return pd.read_parquet(local)

    def attach(self, version: int, path: Path) -> str:
        """Attach a drift report to ``version``'s run under ``drift/``; return its artifact path.

        Raises:
            SourceUnavailable: If MLflow cannot be reached.
        """
        run_id = self._run_id(version)
        try:
            self._client.log_artifact(run_id, str(path), "drift")
        except (MlflowException, OSError) as exc:
            raise SourceUnavailable("mlflow", f"cannot attach {path.name}: {exc}",
                                    "registry_unreachable") from exc  # fmt: skip
        return f"runs:/{run_id}/drift/{path.name}"
