"""Request and response models; the feature record is generated from the feature contract.

:data:`FeatureRecord` has one field per contract feature, in contract order: ``int`` and
``float`` features are numbers (no strings or booleans; an ``int`` feature takes ``28`` or
``28.0``, not ``28.5``) bounded by the contract's validity range (``Field(ge=,
le=)``), categorical features are a ``Literal`` of the allowed values, nullable features accept
``null`` and may be omitted, and unknown fields are refused (``extra="forbid"``). So a wrong type,
a missing field, an out-of-range value and an unknown category are all rejected before any model
code runs, and the 422 names the field and the rule (see :func:`contract_rule`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features import CONTRACT, ENTITY_ID, FEATURES, CategoricalFeature, Feature, NumericFeature
from interfaces.routing import Variant

MAX_BATCH_RECORDS: Final = 512
"""Most records in one ``POST /predict``; bigger batches belong to a batch-scoring job."""

ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"
"""Request and entity ids: printable, no spaces, at most 128 characters (safe in logs)."""

RequestId = Annotated[str, Field(pattern=ID_PATTERN, examples=["3f2a9c0e1b7d4e5f"])]


def contract_rule(f: Feature) -> str:
    """Describe the rule a value of ``f`` must follow, for humans (422 messages, OpenAPI)."""
    null = " or null" if f.nullable else ""
    if isinstance(f, NumericFeature):
        kind = "an integer" if f.kind == "int" else "a number"
        lo = int(f.minimum) if f.kind == "int" else f.minimum
        hi = int(f.maximum) if f.kind == "int" else f.maximum
        return f"{kind} in [{lo}, {hi}] ({f.unit}){null}"
    return "one of " + ", ".join(repr(c) for c in f.categories) + null


def _integral(value: Any) -> Any:
    # JSON Schema counts 28.0 as an integer, and so do JSON encoders of float columns.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


ContractInt = Annotated[StrictInt, BeforeValidator(_integral)]
"""An integer: JSON integers and integral numbers (28.0); not strings, booleans or 28.5."""


def _record_field(f: Feature) -> tuple[Any, Any]:
    description = f"{f.description}: {contract_rule(f)}."
    default: Any = None if f.nullable else ...
    if isinstance(f, NumericFeature):
        number: Any = ContractInt if f.kind == "int" else StrictFloat
        extra: dict[str, Any] = {} if f.kind == "int" else {"allow_inf_nan": False}
        annotation = number | None if f.nullable else number
        bound = int if f.kind == "int" else float
        field = Field(
            default,
            ge=bound(f.minimum),
            le=bound(f.maximum),
            description=description,
            **extra,
        )
        return annotation, field
    assert isinstance(f, CategoricalFeature)
    categories: Any = Literal[f.categories]
    annotation = categories | None if f.nullable else categories
    return annotation, Field(default, description=description)


EXAMPLE_RECORD: Final[dict[str, Any]] = dict(CONTRACT.example)
"""The contract's example record: the OpenAPI example, the model smoke test, the benchmarks."""

MAX_RECORD_FIELDS: Final = 2 * (len(FEATURES) + 1)
"""Most keys a record may have before validation stops at one error for the whole record.

``extra="forbid"`` reports every unknown key: a 1 MB record of 90,000 keys made 90,000 errors,
a 15 MB answer and over a second of blocked event loop. Past this many keys (twice the
contract's), the record gets one ``too_many_fields`` error instead.
"""

_RECORD_FIELDS: Final = frozenset(
    {*([ENTITY_ID] if ENTITY_ID else []), *(f.name for f in FEATURES)}
)


def _bounded_fields(value: Any) -> Any:
    if isinstance(value, dict) and len(value) > MAX_RECORD_FIELDS:
        unknown = [key for key in value if key not in _RECORD_FIELDS]
        raise PydanticCustomError(
            "too_many_fields",
            "the record has {count} fields, {unknown} of them unknown (the first: '{first}')",
            {"count": len(value), "unknown": len(unknown), "first": str(unknown[0])[:40]},
        )
    return value


if TYPE_CHECKING:
    # mypy cannot see fields made by create_model; code reads them by contract name.
    class FeatureRecord(BaseModel):
        """One record (fields generated from the feature contract)."""

        customer_id: str | None

else:
    FeatureRecord = create_model(
        "FeatureRecord",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_RECORD]}),
        __doc__=f"One record of {CONTRACT.name}; every field follows the feature contract.",
        __validators__={"_bounded_fields": model_validator(mode="before")(_bounded_fields)},
        **{
            ENTITY_ID: (
                str | None,
                Field(
                    None,
                    pattern=ID_PATTERN,
                    description="Optional routing key: the same customer always sees the same "
                    "model variant. Not a model input.",
                ),
            ),
        }
        if ENTITY_ID
        else {},
        **{f.name: _record_field(f) for f in FEATURES},
    )


class PredictRequest(BaseModel):
    """One or more feature records to score."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"records": [{**({ENTITY_ID: "c-000042"} if ENTITY_ID else {}), **EXAMPLE_RECORD}]}
            ]
        },
    )

    records: list[FeatureRecord] = Field(
        min_length=1,
        max_length=MAX_BATCH_RECORDS,
        description=f"1 to {MAX_BATCH_RECORDS} records; one record is the normal case.",
    )


class Prediction(BaseModel):
    """The score of one record."""

    prediction: Literal[0, 1] = Field(description="1 when the probability reaches the threshold.")
    probability: float = Field(ge=0.0, le=1.0, description="Predicted probability of default.")
    model_version: int = Field(description="Registry version of the model that scored the record.")
    variant: Variant = Field(description="Which deployment served the record.")


class PredictResponse(BaseModel):
    """Scores in the order of the request's records."""

    request_id: str = Field(description="The caller's X-Request-ID, or a generated id.")
    predictions: list[Prediction]


LABEL_RULE: Final = "0 or 1 as a JSON integer (not true/false, not a string)"
"""The rule of ``FeedbackRequest.label``, named in its 422."""


class FeedbackRequest(BaseModel):
    """The true outcome of an earlier prediction."""

    model_config = ConfigDict(extra="forbid")

    request_id: RequestId
    row: int = Field(
        default=0,
        ge=0,
        lt=MAX_BATCH_RECORDS,
        description="Position of the record in the original request (0 for single records).",
    )
    label: ContractInt = Field(
        ge=0,
        le=1,
        description=f"1 when {CONTRACT.positive}, 0 otherwise: {LABEL_RULE}.",
    )


class FeedbackResponse(BaseModel):
    """The prediction the label was joined to."""

    request_id: str
    row: int
    label: Literal[0, 1]
    probability: float
    variant: Variant
    model_version: int
    outcome: Literal["tp", "fp", "tn", "fn"]


class FieldError(BaseModel):
    """One rule a request broke."""

    field: str = Field(description="Where, e.g. 'records[0].age' or 'header.x-request-id'.")
    rule: str = Field(description="The rule, e.g. 'an integer in [18, 100] (years)'.")
    message: str = Field(description="What was wrong with the value.")
    type: str = Field(description="Machine-readable error type (pydantic's).")


class ValidationErrorResponse(BaseModel):
    """Body of every 422."""

    detail: str
    errors: list[FieldError]


class ErrorResponse(BaseModel):
    """Body of every other error."""

    detail: str


class ModelView(BaseModel):
    """One served model."""

    version: int
    since: datetime | None = Field(description="When the registry gave it this role.")
    loaded_at: datetime = Field(description="When this process started serving it.")
    inference_path: Literal["compiled", "reference"] = Field(
        description="Which path scores its requests: the compiled preprocessing or the "
        "reference scikit-learn pipeline."
    )
    inference_path_reason: str = Field(
        description="Why that path: the checks it passed (registration, load), or why the "
        "compiled path was refused or is off."
    )


class RefusalView(BaseModel):
    """A registry choice this process refuses to serve as asked."""

    variant: Variant = Field(description="The role the registry gave the version.")
    version: int
    reason: Literal["rejected", "gate_not_passed", "canary_weight_above_cap"]
    detail: str = Field(description="What was found, in words.")
    since: datetime = Field(description="When this process first refused it.")


class DeploymentView(BaseModel):
    """What this process serves."""

    champion: ModelView | None
    canary: ModelView | None
    canary_weight: float = Field(ge=0.0, le=1.0, description="Share of routing keys on canary.")
    refusals: list[RefusalView] = Field(
        default_factory=list,
        description="What the registry asks for that is not served as asked, and why "
        "(a rejected or ungated version; a canary weight above the platform's cap).",
    )
    from_cache: bool = Field(
        default=False,
        description="Serving the models cached before a restart: the registry has not "
        "answered since.",
    )


class LoadFailureView(BaseModel):
    """A version the registry asks for but this process could not load."""

    variant: Variant
    version: int
    error: str = Field(description="Exception type only; details are in the service log.")
    since: datetime


class HealthResponse(BaseModel):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    """Whether the process can serve predictions, and with which models."""

    ready: bool
    deployment: DeploymentView
    failures: list[LoadFailureView]
    last_reconciled_at: datetime | None
    registry_error: str | None = Field(
        default=None,
        description="Why the registry is not being followed: the last poll failed, or no poll "
        "has succeeded for a few intervals (stale).",
    )
    last_registry_success_at: datetime | None = Field(
        default=None, description="When a poll last read the registry."
    )
    event_log_error: str | None = Field(
        default=None,
        description="Why the deployment-event log cannot be read: the aliases are still "
        "followed from MLflow, only the times each model took its role are the last known.",
    )
    refusals: list[RefusalView] = Field(
        default_factory=list, description="Registry choices refused (as in GET /model)."
    )
    reason: str | None = Field(
        default=None, description="Why the process is not ready, when it is not."
    )


class ReloadResponse(BaseModel):
    """Result of an on-demand reconciliation with the registry."""

    changed: bool = Field(description="Whether the served models or weight changed.")
    converged: bool = Field(description="Whether every version the registry asks for now serves.")
    deployment: DeploymentView
    failures: list[LoadFailureView]


if TYPE_CHECKING:
    FeatureName = str
else:
    FeatureName = Literal[tuple(f.name for f in FEATURES)]


class DriftReport(BaseModel):
    """One drift check's result, posted by the monitoring job."""

    model_config = ConfigDict(extra="forbid")

    variant: Variant
    model_version: int = Field(ge=1)
    scores: dict[FeatureName, Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] = Field(
        description="Drift per feature: a distance, higher = more drift, 0 = identical."
    )
    drifted_ratio: float = Field(ge=0.0, le=1.0, description="Share of features flagged.")
    checked_at: datetime | None = Field(default=None, description="Defaults to now.")
