"""Deterministic champion/canary split by routing key.

A routing key (the record's ``customer_id`` when it has one, else the request id) is hashed with
a salt into a point of [0, 1); keys below the canary weight go to the canary. Hence:

* the same customer sees the same variant on every request, in every worker, after a restart;
* raising the weight only *adds* customers to the canary, nobody flips back and forth;
* the salt is the challenger's version, so each new canary samples a fresh set of customers
  instead of always exposing the same unlucky ones.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

Variant = Literal["champion", "canary"]
CHAMPION: Final = "champion"
CANARY: Final = "canary"
VARIANTS: Final[tuple[Variant, ...]] = (CHAMPION, CANARY)

_SCALE: Final = float(2**64)


def bucket(routing_key: str, salt: str = "") -> float:
    """Map a routing key to a stable point of [0, 1).

    Args:
        routing_key: The entity id or request id.
        salt: Separates one experiment's assignment from another's.

    Returns:
        A value uniform over [0, 1) for distinct keys, identical for identical inputs.
    """
    digest = hashlib.blake2b(f"{salt}\x1f{routing_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def choose_variant(routing_key: str, canary_weight: float, salt: str = "") -> Variant:
    """Return the variant that serves ``routing_key`` at ``canary_weight``.

    Args:
        routing_key: The entity id or request id.
        canary_weight: Share of keys sent to the canary, in [0, 1].
        salt: The canary's identity (its model version).
    """
    if canary_weight <= 0.0:
        return CHAMPION
    if canary_weight >= 1.0:
        return CANARY
    return CANARY if bucket(routing_key, salt) < canary_weight else CHAMPION
