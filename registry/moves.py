"""Planning alias moves: pure functions from the current state to the state a move produces.

Each ``plan_*`` function either returns a :class:`Move` or ``None`` when the state already is
what the move would produce — which is what makes a repeated call (a controller restarted after
a crash, a CI job re-run) a no-op instead of a second event. Rules a move must respect are
checked here, with messages that name the rule. Nothing here touches MLflow or a database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from registry.errors import InvalidMoveError, NoPreviousChampionError
from registry.events import Action
from registry.state import (
    CHALLENGER,
    CHAMPION,
    DeploymentState,
    interim_weight,
    validate_weight,
)

__all__ = [
    "Move",
    "is_partial",
    "plan_bootstrap",
    "plan_canary",
    "plan_challenger",
    "plan_promote",
    "plan_reject",
    "plan_rollback",
    "plan_weight",
]


@dataclass(frozen=True)
class Move:
    """One planned change of the deployment state.

    Attributes:
        action: What the event will say happened.
        alias: The alias that moves, if one does.
        from_version: Where it comes from (the rejected version, for a reject).
        to_version: Where it goes.
        before: The state the plan was made from.
        after: The state the move produces.
        reject: A version to tag rejected as part of the move.
    """

    action: Action
    alias: str | None
    from_version: int | None
    to_version: int | None
    before: DeploymentState
    after: DeploymentState
    reject: int | None = None


def plan_bootstrap(state: DeploymentState, version: int) -> Move | None:
    """First champion of a model.

    Raises:
        InvalidMoveError: If another version is already champion (use promote).
    """
    if state.champion == version:
        return None
    if state.champion is not None:
        raise InvalidMoveError(
            f"bootstrap only sets the first champion; version {state.champion} already is "
            f"champion, so use promote({version}) instead"
        )
    after = replace(state, champion=version)
    if state.challenger == version:
        after = replace(after, challenger=None, canary_weight=0.0)
    return Move(Action.BOOTSTRAP, CHAMPION, None, version, state, after)


def plan_challenger(state: DeploymentState, version: int) -> Move | None:
    """Point ``challenger`` at ``version``, with no traffic yet.

    Raises:
        InvalidMoveError: If ``version`` is the champion.
    """
    _not_champion(state, version)
    if state.challenger == version:
        return None
    after = replace(state, challenger=version, canary_weight=0.0)
    return Move(Action.CHALLENGER, CHALLENGER, state.challenger, version, state, after)


def plan_weight(state: DeploymentState, weight: float) -> Move | None:
    """Change the challenger's share of traffic.

    Raises:
        InvalidMoveError: If the weight is outside [0, 1], or positive with no challenger.
    """
    weight = validate_weight(weight)
    if state.canary_weight == weight:
        return None
    if state.challenger is None and weight > 0:
        raise InvalidMoveError(
            f"canary_weight {weight:g} needs a challenger to send traffic to; "
            "set one first (set_challenger or start_canary)"
        )
    after = replace(state, canary_weight=weight)
    return Move(Action.CANARY, None, state.challenger, state.challenger, state, after)


def plan_canary(state: DeploymentState, version: int, weight: float) -> Move | None:
    """Make ``version`` the challenger and give it ``weight`` of the traffic, as one move.

    Raises:
        InvalidMoveError: If the weight is outside [0, 1] or ``version`` is the champion.
    """
    weight = validate_weight(weight)
    _not_champion(state, version)
    if state.challenger == version and state.canary_weight == weight:
        return None
    after = replace(state, challenger=version, canary_weight=weight)
    alias = CHALLENGER if state.challenger != version else None
    return Move(Action.CANARY, alias, state.challenger, version, state, after)


def plan_promote(state: DeploymentState, version: int) -> Move | None:
    """``champion`` moves to ``version``; the old champion is kept for a rollback.

    The canary cycle ends with a promote, so the challenger alias and the weight are cleared.
    """
    if state.champion == version:
        return None
    after = DeploymentState(
        champion=version, challenger=None, canary_weight=0.0, previous_champion=state.champion
    )
    return Move(Action.PROMOTE, CHAMPION, state.champion, version, state, after)


def plan_rollback(
    state: DeploymentState, model_name: str, *, previous_rejected: bool = False
) -> Move:
    """``champion`` goes back to the previous champion (the canary, if any, is left alone).

    Args:
        state: The current state.
        model_name: For messages.
        previous_rejected: Whether the previous champion has been rejected since it served:
            a rejected version never serves again, so the rollback is refused.

    Raises:
        NoPreviousChampionError: If no previous champion is recorded.
        InvalidMoveError: If the previous champion is rejected, or is the champion already
            (a "rollback 2->2" would move nothing and claim it did).
    """
    previous = state.previous_champion
    if previous is None or state.champion is None:
        raise NoPreviousChampionError(model_name, state.champion)
    if previous == state.champion:
        raise InvalidMoveError(
            f"cannot roll back {model_name!r}: the recorded previous champion, version "
            f"{previous}, already is the champion, so there is nothing to go back to"
        )
    if previous_rejected:
        raise InvalidMoveError(
            f"cannot roll back {model_name!r} to version {previous}: it was rejected after it "
            "served (mlplat.status=rejected), and a rejected version never serves again; "
            "promote a version that passed the gates instead"
        )
    after = replace(state, champion=previous, previous_champion=None)
    if state.challenger == previous:
        after = replace(after, challenger=None, canary_weight=0.0)
    return Move(Action.ROLLBACK, CHAMPION, state.champion, previous, state, after)


def plan_reject(state: DeploymentState, version: int, *, already_rejected: bool) -> Move | None:
    """Mark ``version`` rejected; if it is the challenger, cut its traffic and drop the alias.

    A challenger on *another* version keeps its weight: rejecting v4 late must not stop v5's
    canary.

    Raises:
        InvalidMoveError: If ``version`` is the champion (roll back or promote first).
    """
    if state.champion == version:
        raise InvalidMoveError(
            f"version {version} is the champion and cannot be rejected while serving; "
            "roll back or promote another version first"
        )
    on_challenger = state.challenger == version
    if already_rejected and not on_challenger:
        return None
    after = replace(state, challenger=None, canary_weight=0.0) if on_challenger else state
    alias = CHALLENGER if on_challenger else None
    return Move(Action.REJECT, alias, version, None, state, after, reject=version)


def is_partial(observed: DeploymentState, before: DeploymentState, after: DeploymentState) -> bool:
    """Whether ``observed`` could be a move from ``before`` to ``after`` cut short.

    Each field must hold its old or its new value (the weight may also hold the interim
    value the move writes first); anything else means someone else changed the state.
    """
    weights = {before.canary_weight, after.canary_weight, interim_weight(before, after)}
    return (
        observed.champion in {before.champion, after.champion}
        and observed.challenger in {before.challenger, after.challenger}
        and observed.previous_champion in {before.previous_champion, after.previous_champion}
        and observed.canary_weight in weights
    )


def _not_champion(state: DeploymentState, version: int) -> None:
    if state.champion == version:
        raise InvalidMoveError(
            f"version {version} is already the champion; a challenger must be another version"
        )
