"""What the configured gates can tell on the data at hand: size-aware notes, before training.

A gate that never fires on small data is worse than no gate: it passes silently. These notes say,
for one dataset and one configuration, which checks will fail outright (too few rows, a label
rate outside the configured band), which will be skipped (slices thinner than
``min_slice_rows``, no slice column), and which are at noise level (an AUC margin or a
calibration ceiling smaller than the holdout's own sampling error). ``mlplat pipeline
check-config`` prints them and ``mlplat pipeline run`` prints them before it trains.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import pandas as pd

from features import Contract
from pipeline.config import PipelineConfig

__all__ = ["SizeNote", "size_notes"]

NoteLevel = Literal["fails", "skipped", "noise", "capped"]

PAIRED_SCORE_CORRELATION = 0.9
"""Assumed correlation of a candidate's and a champion's scores on the same rows."""


@dataclass(frozen=True)
class SizeNote:
    """One thing the data's size does to a gate.

    Attributes:
        check: The configuration key or gate it is about (``gates.min_slice_rows``).
        level: ``fails`` (the run will stop), ``skipped`` (the gate will not run), ``noise``
            (the gate runs but cannot tell a real change from sampling error), ``capped`` (a
            sample is smaller than configured).
        message: One line with the numbers, e.g. ``slice gates skipped: 45 holdout rows < 200``.
    """

    check: str
    level: NoteLevel
    message: str

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-serialisable form."""
        return asdict(self)


def size_notes(frame: pd.DataFrame, contract: Contract, config: PipelineConfig) -> list[SizeNote]:
    """The notes for training on ``frame`` (labelled rows, not modified) with ``config``."""
    rows = len(frame)
    holdout = round(rows * config.data.holdout_fraction)
    train = rows - holdout
    labels = frame[contract.target]
    rate = float(labels.mean()) if rows else 0.0
    notes = [*_validation(rows, rate, config), *_slices(frame, contract, holdout, config)]
    notes += _noise(holdout, rate, config)
    if train < config.reference_sample_rows:
        notes.append(
            SizeNote(
                "reference_sample_rows",
                "capped",
                f"drift reference capped: {train} training rows < reference_sample_rows "
                f"{config.reference_sample_rows}",
            )
        )
    if holdout < config.evaluation.behaviour_sample_rows:
        notes.append(
            SizeNote(
                "evaluation.behaviour_sample_rows",
                "capped",
                f"behavioural checks use all {holdout} holdout rows "
                f"(< behaviour_sample_rows {config.evaluation.behaviour_sample_rows})",
            )
        )
    return notes


def _validation(rows: int, rate: float, config: PipelineConfig) -> list[SizeNote]:
    rules = config.validation
    notes = []
    if rows < rules.min_rows:
        notes.append(
            SizeNote(
                "validation.min_rows",
                "fails",
                f"validation will fail: {rows} rows < min_rows {rules.min_rows} "
                "(lower it in a --config file if that many rows are all there is)",
            )
        )
    if not rules.min_default_rate <= rate <= rules.max_default_rate:
        notes.append(
            SizeNote(
                "validation.min_default_rate",
                "fails",
                f"validation will fail: positive-label rate {rate:.3f} outside "
                f"[{rules.min_default_rate}, {rules.max_default_rate}] "
                "(validation.min_default_rate/max_default_rate)",
            )
        )
    return notes


def _slices(
    frame: pd.DataFrame, contract: Contract, holdout: int, config: PipelineConfig
) -> list[SizeNote]:
    if contract.segment is None:
        return [
            SizeNote(
                "gates.slice_auc_margin",
                "skipped",
                "slice gates skipped: the contract names no segment column",
            )
        ]
    share = holdout / max(len(frame), 1)
    counts = frame[contract.segment].astype(str).value_counts()
    thin = {key: round(count * share) for key, count in counts.items()}
    thin = {key: n for key, n in thin.items() if n < config.gates.min_slice_rows}
    if not thin:
        return []
    listed = ", ".join(f"{key} ~{n}" for key, n in sorted(thin.items()))
    return [
        SizeNote(
            "gates.min_slice_rows",
            "skipped",
            f"slice gates skipped for {len(thin)} of {len(counts)} slices: holdout rows "
            f"{listed} < min_slice_rows {config.gates.min_slice_rows}",
        )
    ]


def _noise(holdout: int, rate: float, config: PipelineConfig) -> list[SizeNote]:
    """Gates whose threshold is below the holdout's sampling error."""
    gates = config.gates
    positives, negatives = holdout * rate, holdout * (1 - rate)
    if positives < 1 or negatives < 1:
        return []
    # Standard error of one AUC under no signal (Mann-Whitney variance), shrunk for a paired
    # difference of two models scoring the same rows (score correlation taken as 0.9): the
    # gate's interval is about this wide, so it only catches losses beyond margin + this band.
    auc_se = math.sqrt((positives + negatives + 1) / (12 * positives * negatives))
    band = 1.96 * auc_se * math.sqrt(2 * (1 - PAIRED_SCORE_CORRELATION))
    notes = []
    if band > 2 * gates.auc_margin:
        notes.append(
            SizeNote(
                "gates.auc_margin",
                "noise",
                f"AUC non-regression at noise level: on {holdout} holdout rows it catches only "
                f"AUC losses beyond ~{gates.auc_margin + band:.3f} (auc_margin {gates.auc_margin})",
            )
        )
    # A perfectly calibrated model's expected ECE on n rows in b bins is about
    # sqrt(2/pi) * sqrt(rate * (1 - rate) * b / n): a ceiling below it flags luck.
    ece_noise = math.sqrt(2 / math.pi) * math.sqrt(
        rate * (1 - rate) * config.evaluation.calibration_bins / holdout
    )
    if gates.max_ece < ece_noise:
        notes.append(
            SizeNote(
                "gates.max_ece",
                "noise",
                f"calibration gate at noise level: a calibrated model's ECE on {holdout} "
                f"holdout rows is up to ~{ece_noise:.3f}, max_ece is {gates.max_ece}",
            )
        )
    return notes
