"""Registered model versions and the lineage tags that say where each one came from.

Every version carries, as MLflow version tags, the digest of the data it was trained on, the code
version that trained it and the verdict of the evaluation gate — enough to answer "what exactly is
serving, and why was it allowed to?" from the registry alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from interfaces.tags import (
    CODE_VERSION_TAG,
    DATA_DIGEST_TAG,
    GATE_VERDICT_TAG,
    REJECTED,
    STATUS_TAG,
    TAG_PREFIX,
)
from registry.errors import InvalidMoveError

__all__ = [
    "CODE_VERSION_TAG",
    "DATA_DIGEST_TAG",
    "GATE_VERDICT_TAG",
    "REJECTED",
    "STATUS_TAG",
    "TAG_PREFIX",
    "ModelVersionInfo",
    "lineage_tags",
]


# MLflow's own limit on model version tag values.
_MAX_TAG_VALUE = 5000
_TAG_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def lineage_tags(lineage: Mapping[str, str]) -> dict[str, str]:
    """MLflow version tags for a lineage mapping (keys get the ``mlplat.`` prefix).

    Args:
        lineage: e.g. ``{"data_digest": "sha256:…", "code_version": "git:abc123",
            "gate_verdict": "passed"}``.

    Returns:
        ``{"mlplat.data_digest": …, …}``.

    Raises:
        InvalidMoveError: If a key is malformed or reserved, or a value is not a short string.
    """
    tags: dict[str, str] = {}
    for key, value in lineage.items():
        name = key if key.startswith(TAG_PREFIX) else TAG_PREFIX + key
        if not _TAG_KEY.match(name[len(TAG_PREFIX) :]):
            raise InvalidMoveError(
                f"lineage key {key!r} must be lower-case letters, digits, '_', '.' or '-'"
            )
        if name == STATUS_TAG:
            raise InvalidMoveError(f"lineage key {key!r} is reserved: reject() sets {STATUS_TAG}")
        if not isinstance(value, str):
            raise InvalidMoveError(f"lineage[{key!r}] must be a string, got {type(value).__name__}")
        if len(value) > _MAX_TAG_VALUE:
            raise InvalidMoveError(
                f"lineage[{key!r}] is {len(value)} characters; MLflow allows {_MAX_TAG_VALUE}"
            )
        tags[name] = value
    return tags


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version, as the rest of the platform needs to see it.

    Attributes:
        version: Version number.
        run_id: The MLflow run that trained it, if known.
        source: Where MLflow stores the model (``models:/m-…``, ``runs:/…``, a path).
        model_uri: URI to load exactly this version (``models:/<name>/<version>``).
        tags: All version tags, lineage included.
        aliases: Aliases that point at this version.
        created_at: Registration time (UTC).
        status: MLflow's registration status (``READY`` once usable).
    """

    version: int
    run_id: str | None
    source: str
    model_uri: str
    tags: Mapping[str, str] = field(repr=False)
    aliases: tuple[str, ...]
    created_at: datetime
    status: str

    @property
    def rejected(self) -> bool:
        """Whether :meth:`registry.ModelRegistry.reject` marked this version."""
        return self.tags.get(STATUS_TAG) == REJECTED

    @property
    def data_digest(self) -> str | None:
        """Digest of the training data, from the lineage tags."""
        return self.tags.get(DATA_DIGEST_TAG)

    @property
    def code_version(self) -> str | None:
        """Code version that trained the model, from the lineage tags."""
        return self.tags.get(CODE_VERSION_TAG)

    @property
    def gate_verdict(self) -> str | None:
        """Verdict of the evaluation gate, from the lineage tags."""
        return self.tags.get(GATE_VERDICT_TAG)
