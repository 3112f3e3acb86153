"""A small, faithful model of how Argo Rollouts judges a web metric, for the canary analysis.

It follows argoproj/argo-rollouts at tag v1.9.1 (commit b6bd3bcf8f60d717a98763d26acc983db7f97cb0),
rewritten from these functions, not copied:

* ``metricproviders/webmetric/webmetric.go`` — ``Provider.Run`` and ``parseResponse``: a non-2xx
  answer or a JSONPath that finds nothing is an Error measurement; a body that is not JSON is
  taken as Successful; otherwise the JSONPath's value is evaluated;
* ``utils/evaluate/evaluate.go`` — ``EvaluateResult``: failure condition first, then
  Inconclusive when neither condition holds, else Successful (one condition alone makes the
  other its negation);
* ``analysis/analysis.go`` — the counters kept per measurement (in ``runMeasurements``),
  ``assessMetricStatus`` and ``assessMetricFailureInconclusiveOrError`` (Failed, then
  Inconclusive, then Error: the last limit exceeded wins), ``consecutiveSuccessLimit`` and
  ``count``;
* ``pkg/apis/rollouts/v1alpha1/analysis_types.go`` — ``Metric.EffectiveCount``;
  ``utils/defaults/defaults.go`` — ``DefaultConsecutiveErrorLimit`` (4);
* ``utils/analysis/factory.go`` — ``ValidateMetric`` (the checks on limits and counts) and
  ``extractValueFromRollout`` (an argument read from the Rollout by a dotted path);
* ``rollout/analysis.go`` — ``reconcileStepBasedAnalysisRun``: an Inconclusive run pauses the
  Rollout, a Failed or Errored one aborts it.

Only what this platform's AnalysisTemplate uses is modelled: one web metric whose conditions
compare ``result`` with a string (``result == "promote"``); anything else raises, so a template
that outgrows the model fails its test instead of being judged by a wrong model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4

_CONDITION = re.compile(r'^\s*result\s*(==|!=)\s*"([^"\\]*)"\s*$')
_JSONPATH = re.compile(r"^\{\$((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\}$")


class Phase(StrEnum):
    """``v1alpha1.AnalysisPhase``."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"

    @property
    def completed(self) -> bool:
        """``AnalysisPhase.Completed``: every phase but Pending and Running."""
        return self not in {Phase.PENDING, Phase.RUNNING}


class ModelError(ValueError):
    """The template uses something this model does not cover."""


def _condition(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    found = _CONDITION.match(text)
    if found is None:
        raise ModelError(f'condition {text!r}: only result == "..." or result != "..."')
    operator, value = found.groups()
    return operator, value


def _int_or_none(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and not value.isdigit():
        raise ModelError(f"{value!r}: only plain integers are modelled")
    return int(value)


@dataclass(frozen=True)
class WebMetric:
    """The fields of a ``v1alpha1.Metric`` with a web provider that the model reads."""

    name: str
    interval: str
    url: str
    json_path: str
    success_condition: str | None
    failure_condition: str | None
    failure_limit: int | None
    inconclusive_limit: int | None
    consecutive_error_limit: int | None
    consecutive_success_limit: int | None
    count: int | None

    @classmethod
    def from_template(cls, metric: Mapping[str, Any]) -> WebMetric:
        """Read one metric of an AnalysisTemplate.

        Raises:
            ModelError: If the metric has no web provider or uses fields the model ignores.
        """
        modelled = {
            "name", "interval", "provider", "successCondition", "failureCondition",
            "failureLimit", "inconclusiveLimit", "consecutiveErrorLimit",
            "consecutiveSuccessLimit", "count",
        }  # fmt: skip
        unmodelled = set(metric) - modelled
        if unmodelled:
            raise ModelError(f"metric {metric.get('name')!r}: {sorted(unmodelled)} not modelled")
        web = metric.get("provider", {}).get("web")
        if web is None or set(metric["provider"]) != {"web"}:
            raise ModelError(f"metric {metric.get('name')!r}: only the web provider is modelled")
        if web.get("method", "GET") != "GET" or "body" in web or "jsonBody" in web:
            raise ModelError("only GET without a body is modelled")
        built = cls(
            name=metric["name"],
            interval=metric.get("interval", ""),
            url=web["url"],
            json_path=web["jsonPath"],
            success_condition=metric.get("successCondition"),
            failure_condition=metric.get("failureCondition"),
            failure_limit=_int_or_none(metric.get("failureLimit")),
            inconclusive_limit=_int_or_none(metric.get("inconclusiveLimit")),
            consecutive_error_limit=_int_or_none(metric.get("consecutiveErrorLimit")),
            consecutive_success_limit=_int_or_none(metric.get("consecutiveSuccessLimit")),
            count=_int_or_none(metric.get("count")),
        )
        _condition(built.success_condition)
        _condition(built.failure_condition)
        return built

    def effective_count(self) -> int | None:
        """``Metric.EffectiveCount``: 1 without count and interval, none (forever) with interval."""
        if not self.count:
            return None if self.interval else 1
        return self.count

    def validate(self) -> None:
        """``ValidateMetric``'s checks on the limits and the count.

        Raises:
            ModelError: With Argo's message, for a metric Argo would refuse.
        """
        count = self.count or 0
        failure_limit = self.failure_limit or 0
        success_limit = self.consecutive_success_limit or 0
        inconclusive_limit = self.inconclusive_limit or 0
        if success_limit < 0:
            raise ModelError("consecutiveSuccessLimit must be >= 0")
        if failure_limit < -1:
            raise ModelError("failureLimit must be >= 0, or -1 to be disabled")
        if success_limit == 0 and failure_limit == -1:
            raise ModelError("failureLimit and consecutiveSuccessLimit cannot both be disabled")
        if inconclusive_limit < 0:
            raise ModelError("inconclusiveLimit must be >= 0")
        if (self.consecutive_error_limit or 0) < 0:
            raise ModelError("consecutiveErrorLimit must be >= 0")
        if count > 0:
            if failure_limit >= 0 and count < failure_limit + success_limit:
                raise ModelError("count must be >= failureLimit + consecutiveSuccessLimit")
            if failure_limit < 0 and count < success_limit:
                raise ModelError("count must be >= consecutiveSuccessLimit")
            if count < inconclusive_limit:
                raise ModelError("count must be >= inconclusiveLimit")
        if count > 1 and not self.interval:
            raise ModelError("interval must be specified when count > 1")


def _holds(condition: tuple[str, str], result: Any) -> bool:
    operator, value = condition
    return bool(result == value) if operator == "==" else bool(result != value)


def evaluate_result(result: Any, metric: WebMetric) -> Phase:
    """``EvaluateResult`` for conditions of the form ``result == "..."``."""
    success = _condition(metric.success_condition)
    failure = _condition(metric.failure_condition)
    if success is None and failure is None:
        return Phase.SUCCESSFUL
    succeeded = success is not None and _holds(success, result)
    failed = failure is not None and _holds(failure, result)
    if success is not None and failure is None:
        failed = not succeeded
    if success is None and failure is not None:
        succeeded = not failed
    if failed:
        return Phase.FAILED
    if not succeeded:
        return Phase.INCONCLUSIVE
    return Phase.SUCCESSFUL


def _json_path(path: str, data: Any) -> Any:
    found = _JSONPATH.match(path)
    if found is None:
        raise ModelError(f"jsonPath {path!r}: only {{$.a.b}} is modelled")
    for key in found.group(1).lstrip(".").split("."):
        if not isinstance(data, dict) or key not in data:
            raise LookupError(f"{key} is not found")
        data = data[key]
    return data


@dataclass(frozen=True)
class Answer:
    """What the web provider received: a status code and a body."""

    status: int
    body: str

    @classmethod
    def json(cls, payload: Mapping[str, Any], status: int = 200) -> Answer:
        """A JSON answer."""
        return cls(status, json.dumps(payload))


def measure(answer: Answer, metric: WebMetric) -> Phase:
    """One measurement: ``Provider.Run`` and ``parseResponse`` on a received answer."""
    if not 200 <= answer.status < 300:
        return Phase.ERROR
    try:
        data = json.loads(answer.body)
    except json.JSONDecodeError:
        return Phase.SUCCESSFUL
    try:
        value = _json_path(metric.json_path, data)
    except LookupError:
        return Phase.ERROR
    return evaluate_result(value, metric)


@dataclass
class MetricResult:
    """``v1alpha1.MetricResult``: the counters Argo keeps for one metric of a run."""

    measurements: list[Phase] = field(default_factory=list)
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    consecutive_success: int = 0

    def record(self, phase: Phase) -> None:
        """Count a completed measurement as ``runMeasurements`` does."""
        self.measurements.append(phase)
        if phase is Phase.ERROR:
            self.error += 1
            self.consecutive_error += 1
            self.consecutive_success = 0
            return
        self.count += 1
        self.consecutive_error = 0
        if phase is Phase.SUCCESSFUL:
            self.successful += 1
            self.consecutive_success += 1
            return
        self.consecutive_success = 0
        if phase is Phase.FAILED:
            self.failed += 1
        else:
            self.inconclusive += 1


def _failure_inconclusive_or_error(metric: WebMetric, result: MetricResult) -> Phase | None:
    """``assessMetricFailureInconclusiveOrError``: each limit in turn, the last exceeded wins."""
    phase = None
    failure_limit = metric.failure_limit if metric.failure_limit is not None else 0
    if failure_limit >= 0 and result.failed > failure_limit:
        phase = Phase.FAILED
    inconclusive_limit = metric.inconclusive_limit or 0
    if result.inconclusive > inconclusive_limit:
        phase = Phase.INCONCLUSIVE
    error_limit = (
        metric.consecutive_error_limit
        if metric.consecutive_error_limit is not None
        else DEFAULT_CONSECUTIVE_ERROR_LIMIT
    )
    if result.consecutive_error > error_limit:
        phase = Phase.ERROR
    return phase


def assess_metric(metric: WebMetric, result: MetricResult, terminating: bool = False) -> Phase:
    """``assessMetricStatus`` after the last measurement has completed."""
    if not result.measurements:
        return Phase.SUCCESSFUL if terminating else Phase.PENDING
    decided = _failure_inconclusive_or_error(metric, result)
    if decided is not None:
        return decided
    success_limit = metric.consecutive_success_limit or 0
    if success_limit > 0 and result.consecutive_success >= success_limit:
        return Phase.SUCCESSFUL
    count = metric.effective_count()
    if count is not None and result.count >= count:
        failure_applicable = metric.failure_limit is None or metric.failure_limit >= 0
        success_applicable = success_limit > 0
        if failure_applicable and success_applicable:
            return Phase.INCONCLUSIVE
        if success_applicable:
            return Phase.FAILED
        return Phase.SUCCESSFUL
    return Phase.SUCCESSFUL if terminating else Phase.RUNNING


@dataclass(frozen=True)
class Run:
    """How an analysis run ended: its phase, the measurements it took, the Rollout's reaction."""

    phase: Phase
    measurements: tuple[Phase, ...]

    @property
    def rollout(self) -> str:
        """``reconcileStepBasedAnalysisRun``: paused, aborted, or on to the next step."""
        if self.phase is Phase.INCONCLUSIVE:
            return "paused"
        if self.phase in {Phase.FAILED, Phase.ERROR}:
            return "aborted"
        return "next step" if self.phase is Phase.SUCCESSFUL else "waiting"


def run_analysis(metric: WebMetric, answers: Iterable[Answer]) -> Run:
    """Take one measurement per answer (one per interval) until the metric's phase completes.

    Returns:
        The run, Running if the answers ran out first.
    """
    metric.validate()
    result = MetricResult()
    phase = Phase.PENDING
    for answer in answers:
        result.record(measure(answer, metric))
        phase = assess_metric(metric, result)
        if phase.completed:
            break
    return Run(phase, tuple(result.measurements))


def resolve_url(url: str, args: Mapping[str, str]) -> str:
    """The URL with ``{{args.NAME}}`` replaced, as Argo resolves a template's arguments.

    Raises:
        ModelError: If the URL names an argument that has no value.
    """

    def value(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in args:
            raise ModelError(f"argument {name!r} has no value")
        return args[name]

    return re.sub(r"\{\{\s*args\.([A-Za-z0-9_-]+)\s*\}\}", value, url)


def extract_value_from_rollout(rollout: Mapping[str, Any], path: str) -> str:
    """``extractValueFromRollout``: follow ``path``, split on dots and brackets, to a primitive.

    Raises:
        LookupError: If the path leads nowhere, as Argo's "invalid path ... in rollout".
    """
    current: Any = rollout
    for section in re.split(r"[.\[\]]+", path):
        if not section:
            continue
        if isinstance(current, list):
            current = current[int(section)]
        elif isinstance(current, dict):
            current = current.get(section)
        else:
            raise LookupError(f"invalid path {path} in rollout")
    if current is None:
        raise LookupError(f"invalid path {path} in rollout")
    if isinstance(current, list | dict):
        raise LookupError(f"path {path} in rollout must terminate in a primitive value")
    return str(current)
