"""MLflow tag names and artifact paths that more than one component reads or writes.

The pipeline writes them on training runs and model versions, the registry and CI read them to
decide what may serve, the controller reads the reference sample from the training run. They
are strings in MLflow, so a typo in one component fails silently in another: they are written
down here once.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CODE_VERSION_TAG",
    "COMPILED_NO",
    "COMPILED_REASON_TAG",
    "COMPILED_TAG",
    "COMPILED_YES",
    "DATA_DIGEST_TAG",
    "GATE_PASSED",
    "GATE_VERDICT_TAG",
    "REFERENCE_ARTIFACT",
    "REJECTED",
    "STATUS_TAG",
    "TAG_PREFIX",
]

TAG_PREFIX: Final = "mlplat."
"""Prefix of every tag the platform writes (runs and model versions)."""
DATA_DIGEST_TAG: Final = "mlplat.data_digest"
"""Model version tag: the digest of the data the version was trained on."""
CODE_VERSION_TAG: Final = "mlplat.code_version"
"""Model version tag: the code version that trained it (``git:<sha>`` or a build arg)."""
GATE_VERDICT_TAG: Final = "mlplat.gate_verdict"
"""Model version tag: the evaluation gate's verdict."""
GATE_PASSED: Final = "passed"
"""The gate verdict a version needs to serve."""
STATUS_TAG: Final = "mlplat.status"
"""Model version tag: ``rejected`` once a version was rolled back or rejected."""
REJECTED: Final = "rejected"
"""The value of :data:`STATUS_TAG` that bars a version from serving again."""
REFERENCE_ARTIFACT: Final = "reference/reference.parquet"
"""Where a training run keeps the reference sample the drift checks compare traffic with."""
COMPILED_TAG: Final = "mlplat.compiled"
"""Run and logged-model tag: whether the compiled inference path (``pipeline/compiled.py``) scored
the holdout like the reference pipeline at registration: :data:`COMPILED_YES` or
:data:`COMPILED_NO`."""
COMPILED_YES: Final = "yes"
"""The value of :data:`COMPILED_TAG` that lets serving use the compiled path."""
COMPILED_NO: Final = "no"
"""The value of :data:`COMPILED_TAG` that keeps serving on the reference path."""
COMPILED_REASON_TAG: Final = "mlplat.compiled_reason"
"""Run and logged-model tag: why the compiled path was refused, or the measured difference and
the tolerance it was held to."""
