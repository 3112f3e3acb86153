"""Synthetic deployment events for the store benchmark: a plausible 90-day log of many models.

Roughly what CI and the controller write: many registrations and canary steps, few rollbacks;
ids follow time, as in the real log, and every event is applied or aborted (the partial unique
index allows one pending move per model, and a healthy log has none).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["ISO", "SPAN", "as_doc", "generate_events", "model_name"]

SPAN = timedelta(days=90)
"""The time the generated events spread over."""
ISO = "%Y-%m-%dT%H:%M:%S.%fZ"
"""How the document store writes timestamps (ISO-8601 text sorts chronologically)."""
# Roughly what CI and the controller do: many registrations and canary steps, few rollbacks.
_ACTIONS = (
    ("register", 0.34),
    ("challenger", 0.16),
    ("canary", 0.26),
    ("promote", 0.10),
    ("reject", 0.08),
    ("rollback", 0.03),
    ("external", 0.02),
    ("repair", 0.01),
)
_ACTORS = ("ci", "controller", "alice@laptop", "bob@build-7", "carol@ops")


def model_name(index: int) -> str:
    """The name of generated model ``index``."""
    return f"credit-default-{index:03d}"


def _choose_action(rng: random.Random) -> str:
    x = rng.random()
    for action, p in _ACTIONS:
        if x < p:
            return action
        x -= p
    return _ACTIONS[-1][0]


@dataclass
class _Model:
    """What the log says about one model so far."""

    latest: int = 1
    champion: int | None = None
    challenger: int | None = None

    def apply(self, action: str, rng: random.Random) -> tuple[int, str | None, float]:
        """Move the model by ``action``; return the version it concerns, the alias and weight."""
        version = self.latest
        if action == "register":
            self.latest += 1
            return self.latest, None, 0.0
        if action in ("challenger", "canary"):
            self.challenger = version
            weight = rng.choice((0.0, 0.05, 0.1, 0.25, 0.5)) if action == "canary" else 0.0
            return version, "challenger", weight
        if action in ("promote", "rollback", "external"):
            self.champion, self.challenger = version, None
            return version, "champion", 0.0
        return version, None, 0.0


def generate_events(n: int, *, models: int, seed: int, end: datetime) -> list[dict[str, Any]]:
    """``n`` plausible deployment events for ``models`` models over the 90 days before ``end``.

    Rows are column dicts of :data:`registry.event_table.deployment_events`, oldest first (ids
    follow time, as in the real log). Every event is applied or aborted: the partial unique
    index allows one pending move per model, and a healthy log has none.
    """
    rng = random.Random(seed)
    start = end - SPAN
    offsets = sorted(rng.random() for _ in range(n))
    state = [_Model() for _ in range(models)]
    rows: list[dict[str, Any]] = []
    for offset in offsets:
        m = rng.randrange(models)
        action = _choose_action(rng)
        version, alias, weight = state[m].apply(action, rng)
        rows.append(_row(rng, m, state[m], action, version, alias, weight, start + SPAN * offset))
    return rows


def _row(
    rng: random.Random,
    m: int,
    model: _Model,
    action: str,
    version: int,
    alias: str | None,
    weight: float,
    created: datetime,
) -> dict[str, Any]:
    """One event row; the draws happen in the order the first edition made them."""
    aborted = rng.random() < 0.03
    return {
        "model_name": model_name(m),
        "action": action,
        "status": "aborted" if aborted else "applied",
        "alias": alias,
        "from_version": max(version - 1, 1),
        "to_version": version,
        "champion": model.champion,
        "challenger": model.challenger,
        "canary_weight": weight,
        "previous_champion": max(version - 2, 1) if model.champion else None,
        "actor": rng.choice(_ACTORS),
        "reason": f"{action} v{version}: gate verdict from CI run " + f"{rng.getrandbits(32):08x}",
        "evidence": f"reports/{m:03d}/v{version}/gate.json",
        "details": _details(rng),
        "status_reason": "gave up: MLflow unreachable" if aborted else None,
        "created_at": created,
        "applied_at": None if aborted else created + timedelta(milliseconds=40),
    }


def _details(rng: random.Random) -> dict[str, Any]:
    return {
        "verdict": {
            "metric": "roc_auc",
            "delta": round(rng.gauss(0.002, 0.01), 5),
            "ci_low": round(rng.gauss(-0.004, 0.005), 5),
            "ci_high": round(rng.gauss(0.008, 0.005), 5),
            "p_value": round(rng.random(), 5),
            "n": rng.randrange(2_000, 50_000),
        },
        "run_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "data_digest": f"{rng.getrandbits(64):016x}",
    }


def as_doc(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the document store keeps it: one JSON document, timestamps as ISO text."""
    doc = dict(row)
    doc["created_at"] = row["created_at"].strftime(ISO)
    doc["applied_at"] = row["applied_at"].strftime(ISO) if row["applied_at"] else None
    return doc
