"""The deploy guardrails' pure rules: the canary weights allowed, and what a refusal says."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ci.deploy import MAX_CANARY_WEIGHT, NotServableError, check_canary_weight
from registry import InvalidMoveError
from registry.admission import vet

pytestmark = pytest.mark.unit


def test_the_cap_is_half_the_traffic() -> None:
    """The champion always keeps at least half the traffic (the demo and the service rely on it)."""
    assert MAX_CANARY_WEIGHT == 0.5


@pytest.mark.parametrize("weight", [1e-9, 0.1, MAX_CANARY_WEIGHT])
def test_weights_in_the_half_open_range_pass(weight: float) -> None:
    """Any share above 0 up to the cap, the cap included, is a canary."""
    assert check_canary_weight(weight) == weight


@pytest.mark.parametrize("weight", [0.0, -0.1, float("nan"), float("inf"), float("-inf")])
def test_no_traffic_or_no_number_is_refused_without_advice_to_promote(weight: float) -> None:
    """Zero, negative, NaN and infinite weights name the range; promoting is not the fix."""
    with pytest.raises(InvalidMoveError, match=r"must be a number in \(0, 0\.5\]") as caught:
        check_canary_weight(weight)
    assert "promote" not in str(caught.value)


@pytest.mark.parametrize("weight", [0.5000001, 0.9, 1.0])
def test_most_of_the_traffic_is_refused_with_advice_to_promote(weight: float) -> None:
    """A canary above the cap is a deploy: the message says to promote instead."""
    with pytest.raises(InvalidMoveError, match=r"in \(0, 0\.5\].*promote the version instead"):
        check_canary_weight(weight)


@dataclass(frozen=True)
class _Tags:
    version: int
    rejected: bool = False
    gate_verdict: str | None = "passed"


@pytest.mark.parametrize("verdict", [None, "failed"])
def test_an_ungated_version_is_refused_with_the_pipeline_run_that_gates_a_model(
    verdict: str | None,
) -> None:
    """The refusal names the verdict and says a passed verdict comes from `mlplat pipeline run`."""
    veto = vet(_Tags(7, gate_verdict=verdict))
    assert veto is not None

    message = str(NotServableError(7, veto, "become champion"))

    assert message.startswith(f"version 7 has mlplat.gate_verdict={verdict!r}")
    assert "so it cannot become champion" in message
    assert '`mlplat pipeline run --reason "..."`' in message
    assert message.endswith("which can then become champion")


def test_a_rejected_version_is_refused_without_a_way_around_it() -> None:
    """Rejection is final: the refusal gives no command that would make the version serve."""
    veto = vet(_Tags(7, rejected=True))
    assert veto is not None

    message = str(NotServableError(7, veto, "take canary traffic"))

    assert message == (
        "version 7 is tagged mlplat.status=rejected and may never serve, "
        "so it cannot take canary traffic"
    )
