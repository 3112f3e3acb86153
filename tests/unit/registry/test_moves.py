"""Move planning: what each move produces, when it is a no-op, and which rules it enforces."""

from __future__ import annotations

import pytest

from registry import Action, DeploymentState, InvalidMoveError, NoPreviousChampionError
from registry.moves import (
    is_partial,
    plan_bootstrap,
    plan_canary,
    plan_challenger,
    plan_promote,
    plan_reject,
    plan_rollback,
    plan_weight,
)
from registry.state import interim_weight, parse_version, validate_weight

pytestmark = pytest.mark.unit

CANARY = DeploymentState(champion=1, challenger=2, canary_weight=0.25)


@pytest.mark.parametrize(("raw", "expected"), [(3, 3), ("3", 3), (" 12 ", 12)])
def test_versions_from_either_mlflow_store_become_int(raw: object, expected: int) -> None:
    """Versions as MLflow stores give them (int or padded string) become int."""
    assert parse_version(raw) == expected


@pytest.mark.parametrize("raw", [0, -1, "x", "1.5", None, True, 2.0])
def test_a_bad_version_names_the_field_and_the_rule(raw: object) -> None:
    """A version that is not a positive whole number is refused, naming the rule."""
    with pytest.raises(InvalidMoveError, match="version must be a positive whole number"):
        parse_version(raw)


@pytest.mark.parametrize("weight", [-0.01, 1.01, float("nan"), float("inf")])
def test_canary_weight_outside_zero_to_one_is_refused(weight: float) -> None:
    """A canary weight outside [0, 1], NaN or infinite is refused, naming the bounds."""
    with pytest.raises(InvalidMoveError, match="canary_weight must be between 0 and 1 inclusive"):
        validate_weight(weight)


@pytest.mark.parametrize("weight", [True, "0.5"])
def test_canary_weight_must_be_a_number(weight: object) -> None:
    """A canary weight given as a bool or a string is refused."""
    with pytest.raises(InvalidMoveError, match="canary_weight must be a number"):
        validate_weight(weight)  # type: ignore[arg-type]


def test_canary_weight_bounds_are_inclusive_and_rounded() -> None:
    """Weights 0 and 1 are allowed, and float noise is rounded away."""
    assert validate_weight(0) == 0.0
    assert validate_weight(1) == 1.0
    assert validate_weight(0.1 + 0.2) == 0.3


def test_state_equality_ignores_timestamps() -> None:
    """Deployment states compare equal regardless of their since-timestamps."""
    from datetime import UTC, datetime

    assert DeploymentState(champion=1, champion_since=datetime.now(UTC)) == DeploymentState(
        champion=1
    )


def test_bootstrap_sets_the_first_champion_and_repeats_as_a_no_op() -> None:
    """Bootstrap sets the first champion; repeating it plans nothing."""
    move = plan_bootstrap(DeploymentState(), 1)
    assert move is not None
    assert (move.action, move.alias, move.from_version, move.to_version) == (
        Action.BOOTSTRAP,
        "champion",
        None,
        1,
    )
    assert move.after == DeploymentState(champion=1)
    assert plan_bootstrap(DeploymentState(champion=1), 1) is None


def test_bootstrap_over_another_champion_points_to_promote() -> None:
    """Bootstrapping over another champion is refused, pointing to promote."""
    with pytest.raises(
        InvalidMoveError, match=r"version 1 already is champion, so use promote\(2\)"
    ):
        plan_bootstrap(DeploymentState(champion=1), 2)


def test_a_new_challenger_starts_without_traffic() -> None:
    """A new challenger replaces the old one with zero traffic; the same one plans nothing."""
    move = plan_challenger(CANARY, 3)
    assert move is not None
    assert move.after == DeploymentState(champion=1, challenger=3, canary_weight=0.0)
    assert (move.from_version, move.to_version) == (2, 3)
    assert plan_challenger(CANARY, 2) is None


def test_the_champion_cannot_be_its_own_challenger() -> None:
    """The champion cannot be made the challenger."""
    with pytest.raises(InvalidMoveError, match="already the champion"):
        plan_challenger(CANARY, 1)


def test_weight_changes_and_no_ops() -> None:
    """Changing the weight is a CANARY move; setting the current weight plans nothing."""
    move = plan_weight(CANARY, 0.5)
    assert move is not None
    assert move.action is Action.CANARY
    assert move.after.canary_weight == 0.5
    assert plan_weight(CANARY, 0.25) is None


def test_traffic_needs_a_challenger() -> None:
    """Traffic above zero needs a challenger; zero without one plans nothing."""
    with pytest.raises(InvalidMoveError, match="needs a challenger"):
        plan_weight(DeploymentState(champion=1), 0.1)
    assert plan_weight(DeploymentState(champion=1), 0.0) is None


def test_start_canary_moves_challenger_and_weight_as_one_move() -> None:
    """Starting a canary sets challenger and weight in one move; repeating plans nothing."""
    move = plan_canary(DeploymentState(champion=1), 2, 0.1)
    assert move is not None
    assert move.alias == "challenger"
    assert move.after == DeploymentState(champion=1, challenger=2, canary_weight=0.1)
    assert plan_canary(move.after, 2, 0.1) is None


def test_promote_remembers_the_old_champion_and_ends_the_canary() -> None:
    """Promotion remembers the previous champion and ends the canary; repeating plans nothing."""
    move = plan_promote(CANARY, 2)
    assert move is not None
    assert move.after == DeploymentState(champion=2, previous_champion=1)
    assert plan_promote(move.after, 2) is None


def test_rollback_to_a_rejected_previous_champion_is_refused_naming_it() -> None:
    """A rejected version never serves again, even as the rollback target."""
    with pytest.raises(InvalidMoveError, match=r"to version 1: it was rejected"):
        plan_rollback(DeploymentState(champion=2, previous_champion=1), "m", previous_rejected=True)


def test_rollback_to_the_version_already_champion_is_refused_not_reported_as_a_move() -> None:
    """No "rollback 2->2" event: a previous champion equal to the champion is nothing to undo."""
    with pytest.raises(InvalidMoveError, match=r"version 2, already is the champion"):
        plan_rollback(DeploymentState(champion=2, previous_champion=2), "m")


def test_rollback_returns_to_the_previous_champion_once() -> None:
    """Rollback restores the previous champion once; a second one has nowhere to go."""
    promoted = DeploymentState(champion=2, previous_champion=1)
    move = plan_rollback(promoted, "m")
    assert move.after == DeploymentState(champion=1)
    assert (move.from_version, move.to_version) == (2, 1)
    with pytest.raises(NoPreviousChampionError, match="no previous champion"):
        plan_rollback(move.after, "m")


def test_rejecting_the_challenger_cuts_its_traffic() -> None:
    """Rejecting the challenger removes it and its traffic."""
    move = plan_reject(CANARY, 2, already_rejected=False)
    assert move is not None
    assert move.after == DeploymentState(champion=1)
    assert move.reject == 2
    assert move.alias == "challenger"


def test_rejecting_another_version_leaves_the_running_canary_alone() -> None:
    """Rejecting another version leaves the canary as it is; rejecting twice plans nothing."""
    move = plan_reject(CANARY, 5, already_rejected=False)
    assert move is not None
    assert move.after == CANARY
    assert plan_reject(CANARY, 5, already_rejected=True) is None


def test_the_serving_champion_cannot_be_rejected() -> None:
    """The champion cannot be rejected."""
    with pytest.raises(InvalidMoveError, match="is the champion and cannot be rejected"):
        plan_reject(CANARY, 1, already_rejected=False)


def test_weight_is_cut_first_when_the_challenger_changes_or_drops() -> None:
    """Traffic is cut first: to 0 for a new challenger, to a lower weight, never raised early."""
    assert interim_weight(CANARY, DeploymentState(champion=1, challenger=3, canary_weight=0.5)) == 0
    assert (
        interim_weight(CANARY, DeploymentState(champion=1, challenger=2, canary_weight=0.1)) == 0.1
    )
    assert (
        interim_weight(CANARY, DeploymentState(champion=1, challenger=2, canary_weight=0.9)) == 0.25
    )


def test_a_half_done_move_is_recognised_and_a_foreign_state_is_not() -> None:
    """A state between a move's before and after is partial; an unrelated one is not."""
    after = DeploymentState(champion=2, previous_champion=1)
    half = DeploymentState(champion=2, challenger=2, canary_weight=0.0, previous_champion=1)
    assert is_partial(half, CANARY, after)
    assert is_partial(CANARY, CANARY, after)
    assert not is_partial(DeploymentState(champion=7), CANARY, after)
