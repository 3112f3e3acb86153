"""The canary split is deterministic by routing key and matches the weight."""

from __future__ import annotations

import pytest

from interfaces.routing import CANARY, CHAMPION, bucket, choose_variant

pytestmark = pytest.mark.unit

KEYS = [f"c-{i:06d}" for i in range(20_000)]


def test_the_same_key_always_gets_the_same_variant() -> None:
    """The same routing key always gets the same variant."""
    first = [choose_variant(key, 0.3, "7") for key in KEYS[:500]]
    again = [choose_variant(key, 0.3, "7") for key in KEYS[:500]]
    assert first == again


def test_the_split_matches_the_weight_within_sampling_error() -> None:
    """The canary's share of keys matches the weight within four standard errors."""
    for weight in (0.05, 0.25, 0.5, 0.9):
        share = sum(choose_variant(key, weight, "2") == CANARY for key in KEYS) / len(KEYS)
        # Four standard errors of a binomial share over 20,000 keys.
        assert abs(share - weight) < 4 * (weight * (1 - weight) / len(KEYS)) ** 0.5


def test_raising_the_weight_only_adds_keys_to_the_canary() -> None:
    """Raising the weight only adds keys to the canary; none move back."""
    at_10 = {key for key in KEYS if choose_variant(key, 0.1, "2") == CANARY}
    at_30 = {key for key in KEYS if choose_variant(key, 0.3, "2") == CANARY}
    assert at_10 < at_30


def test_each_canary_samples_different_customers() -> None:
    """Each canary version draws its own customers, overlapping others only by chance."""
    canary_2 = {key for key in KEYS if choose_variant(key, 0.2, "2") == CANARY}
    canary_3 = {key for key in KEYS if choose_variant(key, 0.2, "3") == CANARY}
    overlap = len(canary_2 & canary_3) / len(canary_2)
    assert 0.1 < overlap < 0.3  # independent draws overlap by about the weight


def test_weight_zero_and_one_are_exact() -> None:
    """Weight 0 sends every key to the champion and weight 1 every key to the canary."""
    assert {choose_variant(key, 0.0, "2") for key in KEYS[:1000]} == {CHAMPION}
    assert {choose_variant(key, 1.0, "2") for key in KEYS[:1000]} == {CANARY}


def test_buckets_lie_in_the_unit_interval() -> None:
    """Routing buckets lie in [0, 1)."""
    values = [bucket(key) for key in KEYS[:1000]]
    assert min(values) >= 0.0
    assert max(values) < 1.0
