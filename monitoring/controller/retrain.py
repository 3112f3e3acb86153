"""The drift-triggered retrain: the pipeline's rule applied, recorded, and a run started.

The controller asks a :class:`RetrainTrigger` when the champion's inputs drift. The default,
:class:`DriftRetrainTrigger`, applies the pipeline's rule and records its decision; on
Kubernetes, ``monitoring/controller/retrain_job.py`` wraps it to start the run as a Job.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from interfaces.files import write_json_atomically

__all__ = [
    "DriftRetrainTrigger",
    "DriftRule",
    "DriftRuleDecision",
    "RetrainDecision",
    "RetrainRequest",
    "RetrainTrigger",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainRequest:
    """Input drift on the champion, as the retrain trigger sees it.

    Attributes:
        model_version: The champion whose inputs drifted.
        drift_share: Share of its features that drifted.
        drifted_features: Which ones.
        severity: ``warning`` or ``critical`` (broad drift: check upstream first).
        reasons: The drift policy's sentences.
        evidence: Path of the drift report, if one was written.
        at: When the drift was seen.
    """

    model_version: int
    drift_share: float
    drifted_features: tuple[str, ...]
    severity: str
    reasons: tuple[str, ...]
    evidence: str | None
    at: datetime


@dataclass(frozen=True)
class RetrainDecision:
    """Whether the retrain trigger fired, and why.

    Attributes:
        fire: Whether a retraining run was asked for.
        reason: Why, in words.
        details: The numbers and what was started.
    """

    fire: bool
    reason: str
    details: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-serialisable form."""
        return {"fire": self.fire, "reason": self.reason, **self.details}


class RetrainTrigger(Protocol):
    """Decides (and possibly starts) a retraining run for champion drift."""

    def __call__(self, request: RetrainRequest) -> RetrainDecision:
        """Apply the drift training trigger to ``request``."""
        ...


class DriftRuleDecision(Protocol):
    """What a drift rule answers: whether to retrain, why, and the numbers behind it."""

    @property
    def fire(self) -> bool:
        """Whether a retraining run should start."""
        ...

    @property
    def reason(self) -> str:
        """Why, in words."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, recorded with the decision."""
        ...


class DriftRule(Protocol):
    """The pipeline's ``drift`` training trigger (``ci/triggers.py::drift`` has this signature).

    Injected rather than imported: ``monitoring`` may not import ``ci`` (the component table in
    ``pyproject.toml``), so whoever wires the controller (``mlplat monitor``, the demo) hands
    the pipeline's rule in, and the controller and ``mlplat pipeline trigger drift`` apply the
    same one.
    """

    def __call__(
        self,
        drift_share: float,
        threshold: float,
        last_drift_run_at: datetime | None,
        cooldown: timedelta,
        now: datetime | None = None,
        evidence: str | None = None,
    ) -> DriftRuleDecision:
        """Decide whether ``drift_share`` asks for a retrain, given the cool-down."""
        ...


class DriftRetrainTrigger:
    """The pipeline's ``drift`` trigger rule (a :class:`DriftRule`), recorded durably.

    Retraining takes minutes and belongs to the pipeline, not to a loop that must roll canaries
    back within seconds, so this trigger only *decides*: it applies the rule (threshold and
    cool-down), records the decision in ``state_file`` (atomically: temp file and rename; the
    last fire time survives restarts, so the cool-down does too), and, when it fires and a
    ``command`` is configured, starts that command detached and does not wait for it
    (``mlplat pipeline trigger drift …`` applies the same rule again and runs the pipeline).

    Args:
        state_file: JSON file holding the last fire time and the recent decisions.
        threshold: Share of drifted features that asks for a retrain.
        cooldown: Minimum time between two drift-triggered runs.
        command: Program and arguments to start when it fires; ``{drift_share}`` and
            ``{evidence}`` are replaced. ``None``: only record the decision.
        rule: The pipeline's drift rule (``ci/triggers.py::drift``).
    """

    _KEEP: Final = 100

    def __init__(
        self,
        state_file: Path,
        threshold: float,
        cooldown: timedelta,
        command: Sequence[str] | None = None,
        *,
        rule: DriftRule,
    ) -> None:
        self.state_file = state_file
        self.rule = rule
        self.threshold = threshold
        self.cooldown = cooldown
        self.command = tuple(command) if command else None
        self._children: list[subprocess.Popen[bytes]] = []

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"last_fired_at": None, "decisions": []}
        except (OSError, ValueError) as exc:
            logger.warning(
                "retrain trigger: unreadable %s (%s); starting afresh", self.state_file, exc
            )
            return {"last_fired_at": None, "decisions": []}
        return data if isinstance(data, dict) else {"last_fired_at": None, "decisions": []}

    def _save(self, data: Mapping[str, Any]) -> None:
        write_json_atomically(self.state_file, data)

    def __call__(self, request: RetrainRequest) -> RetrainDecision:
        """Apply the rule, record the decision and start the command if it fires."""
        self._children = [child for child in self._children if child.poll() is None]
        data = self._load()
        last = data.get("last_fired_at")
        last_fired = datetime.fromisoformat(last) if isinstance(last, str) else None
        decision = self.rule(
            request.drift_share,
            self.threshold,
            last_fired,
            self.cooldown,
            now=request.at,
            evidence=request.evidence,
        )
        started: list[str] | None = None
        if decision.fire:
            data["last_fired_at"] = request.at.isoformat()
            if self.command is not None:
                started = self._start(request)
        record = {
            "at": request.at.isoformat(),
            "model_version": request.model_version,
            "drifted_features": list(request.drifted_features),
            "severity": request.severity,
            **decision.to_dict(),
            "command": started,
        }
        decisions = list(data.get("decisions") or [])
        data["decisions"] = [*decisions, record][-self._KEEP :]
        self._save(data)
        return RetrainDecision(decision.fire, decision.reason, record)

    def _start(self, request: RetrainRequest) -> list[str]:
        assert self.command is not None
        values = {"drift_share": f"{request.drift_share:.4f}", "evidence": request.evidence or ""}
        argv = [part.format(**values) for part in self.command]
        log = self.state_file.with_name("retrain.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            # Detached, in its own session: a controller restart must not kill the training run.
            child = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self._children.append(child)
        logger.info("retrain trigger fired: started %s (pid %d)", argv, child.pid)
        return argv
