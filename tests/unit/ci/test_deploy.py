"""The deploy guardrails' pure rules: which canary weights a canary may take."""

from __future__ import annotations

import pytest

from ci.deploy import MAX_CANARY_WEIGHT, check_canary_weight
from registry import InvalidMoveError

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
