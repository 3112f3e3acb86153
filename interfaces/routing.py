"""Deterministic champion/canary split by routing key.

A routing key (the record's ``customer_id`` when it has one, else the request id) is hashed into
a point of [0, 1) (:func:`key_hash`, no salt), and that point is hashed again with a salt
(:func:`salted`); keys whose salted point is below the canary weight go to the canary. Hence:

* the same customer sees the same variant on every request, in every worker, after a restart;
* raising the weight only *adds* customers to the canary, nobody flips back and forth;
* the salt is the challenger's version (:func:`canary_salt`), so each new canary samples a
  fresh, independent set of customers instead of always exposing the same unlucky ones;
* the inference log records the *unsalted* point, so the monitor can split traffic logged
  before a canary existed by the very rule the canary later used (the judge's baseline,
  ``monitoring/judge/log_evidence.py``): ``salted(key_hash(key), canary_salt(v)) < weight``. The
  raw key (a customer id) is never logged.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

Variant = Literal["champion", "canary"]
CHAMPION: Final = "champion"
CANARY: Final = "canary"
VARIANTS: Final[tuple[Variant, ...]] = (CHAMPION, CANARY)

_SCALE: Final = float(2**64)


def _unit(text: str) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def key_hash(routing_key: str) -> float:
    """The routing key's unsalted point of [0, 1), as the inference log records it."""
    return _unit(routing_key)


def salted(point: float, salt: str = "") -> float:
    """The point the split compares: the unsalted point hashed with ``salt`` (none: itself).

    A function of the logged point alone (its exact ``repr``), so it can be recomputed from
    the inference log; uniform over [0, 1) and independent between salts.
    """
    if not salt:
        return point
    return _unit(f"{salt}\x1f{float(point)!r}")  # float(): numpy scalars repr differently


def canary_salt(version: int) -> str:
    """The salt of the canary of model ``version`` (the same in the service and the monitor)."""
    return str(version)


def bucket(routing_key: str, salt: str = "") -> float:
    """Map a routing key to a stable point of [0, 1).

    Args:
        routing_key: The entity id or request id.
        salt: Separates one experiment's assignment from another's.

    Returns:
        A value uniform over [0, 1) for distinct keys, identical for identical inputs.
    """
    return salted(key_hash(routing_key), salt)


def variant_at(point: float, canary_weight: float, salt: str = "") -> Variant:
    """The variant that serves the unsalted point ``point`` (see :func:`choose_variant`)."""
    if canary_weight <= 0.0:
        return CHAMPION
    if canary_weight >= 1.0:
        return CANARY
    return CANARY if salted(point, salt) < canary_weight else CHAMPION


def choose_variant(routing_key: str, canary_weight: float, salt: str = "") -> Variant:
    """Return the variant that serves ``routing_key`` at ``canary_weight``.

    Args:
        routing_key: The entity id or request id.
        canary_weight: Share of keys sent to the canary, in [0, 1].
        salt: The canary's identity (its model version).
    """
    return variant_at(key_hash(routing_key), canary_weight, salt)
