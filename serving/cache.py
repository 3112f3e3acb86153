"""The last served models on local disk, so a restart while MLflow is down still serves.

After every change of what serves, the reconciler writes the models (skops files) and a small
``deployment.json`` naming them into the cache directory, with the compile check each registry
model's registration recorded (so a restart serves it through the same inference path). Every
file is written to a temporary name and renamed, so a process killed mid-write (or two workers
writing at once) never leaves a half-written file behind a name. At startup, when the registry
cannot be read, the service loads the cached deployment and reports that it serves from the
cache until the registry answers.

Only versions the service was allowed to serve are ever cached (the admission check runs
before a model is installed), and loading trusts exactly the pipeline's types
(:func:`pipeline.model_io.load_skops`), as a load from the registry does.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import skops.io

from interfaces.files import write_atomically
from pipeline.compiled import CompileCheck
from pipeline.model_io import load_skops
from serving.batcher import Predictor
from serving.inference_path import Recorded, as_loaded

logger = logging.getLogger(__name__)

STATE_FILE = "deployment.json"


@dataclass(frozen=True)
class CachedDeployment:
    """What served when the cache was last written.

    Attributes:
        champion: The champion's version.
        canary: The canary's version, if one served.
        canary_weight: The canary's share of traffic.
    """

    champion: int
    canary: int | None
    canary_weight: float


def _dump_skops(predictor: Predictor, path: Path) -> None:
    skops.io.dump(predictor, path)


def _load_skops(path: Path) -> Predictor:
    predictor: Predictor = load_skops(path)
    return predictor


class ModelCache:
    """A directory holding the last served deployment.

    Args:
        directory: Where the files live (created on first write).
        dump: Writes a model to a file; default skops.
        load: Reads a model back; default :func:`pipeline.model_io.load_skops`.
    """

    def __init__(
        self,
        directory: Path,
        *,
        dump: Callable[[Predictor, Path], None] = _dump_skops,
        load: Callable[[Path], Predictor] = _load_skops,
    ) -> None:
        self.directory = directory
        self._dump = dump
        self._load = load

    def _model_path(self, version: int) -> Path:
        return self.directory / f"model-v{version}.skops"

    def save(self, deployment: CachedDeployment, models: dict[int, Predictor]) -> None:
        """Write the models not cached yet, then the deployment naming them; prune the rest.

        Args:
            deployment: What serves now.
            models: The served models by version.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        checks: dict[str, dict[str, str]] = {}
        for version, predictor in models.items():
            loaded = as_loaded(predictor)
            model = loaded
            if isinstance(loaded, Recorded):
                model = loaded.model
                checks[str(version)] = loaded.check.tags() if loaded.check else {}
            path = self._model_path(version)
            if not path.exists():
                write_atomically(path, functools.partial(self._dump, model), mode=0o600)
        text = json.dumps(
            {
                "champion": deployment.champion,
                "canary": deployment.canary,
                "canary_weight": deployment.canary_weight,
                "compile_checks": checks,
            }
        )

        def write_state(tmp: Path) -> None:
            tmp.write_text(text)

        write_atomically(self.directory / STATE_FILE, write_state, mode=0o600)
        keep = {self._model_path(v).name for v in models}
        for stale in self.directory.glob("model-v*.skops"):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)

    def read(self) -> tuple[CachedDeployment, dict[int, Predictor]] | None:
        """The cached deployment and its models, or ``None`` when there is no usable cache."""
        try:
            raw: Any = json.loads((self.directory / STATE_FILE).read_text())
            cached = CachedDeployment(
                champion=int(raw["champion"]),
                canary=None if raw.get("canary") is None else int(raw["canary"]),
                canary_weight=float(raw.get("canary_weight", 0.0)),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("model cache %s is unreadable (%s); ignoring it", self.directory, exc)
            return None
        checks = raw.get("compile_checks") or {}
        models: dict[int, Predictor] = {}
        for version in (cached.champion, cached.canary):
            if version is None:
                continue
            try:
                model = self._load(self._model_path(version))
                record = checks.get(str(version))
                # A registry model keeps its registration's verdict across a restart.
                models[version] = (
                    model if record is None else Recorded(model, CompileCheck.from_tags(record))
                )
            except Exception as exc:  # a damaged cache must not stop the service starting
                logger.warning("cached model v%d cannot be loaded (%s); skipping it", version, exc)
        if cached.champion not in models:
            return None
        return cached, models
