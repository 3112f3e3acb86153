"""The promotion gate: may this candidate replace the champion?

Every check returns its numbers and a reason, passed or not, so a verdict explains itself.

Rules (thresholds from :class:`pipeline.config.GateConfig`):

* **Floors** — holdout ROC AUC ≥ ``min_auc``; log loss ≤ ``max_log_loss``; Brier score ≤
  ``max_brier``; expected calibration error ≤ ``max_ece``. Always applied.
* **Non-regression** (only with a champion, scored on the *same* holdout rows) — a paired,
  class-stratified bootstrap of ``AUC(candidate) - AUC(champion)`` gives a two-sided
  ``confidence`` percentile interval ``[lo, hi]``. The candidate is rejected when
  ``hi < -auc_margin``: even the optimistic end of the interval loses more than the margin, so it
  is worse beyond the margin with at least ``(1 + confidence) / 2`` one-sided confidence. A
  small, noisy difference does not block a release; a loss clearly beyond the margin does.
* **Slice non-regression** — the same rule per segment with ``slice_auc_margin``; a slice with
  fewer than ``min_slice_rows`` holdout rows, or a single class, is reported as skipped.
* **Behaviour** — every behavioural check must pass.
* **Budgets** — batched predict time per row ≤ ``latency_budget_ms_per_row``; skops size ≤
  ``size_budget_bytes``.

With no champion (the first model), only floors, behaviour and budgets apply, and the verdict
says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from features import SEGMENT
from pipeline.config import GateConfig
from pipeline.evaluate import Evaluation

_CELLS_PER_CHUNK = 4_000_000  # bounds bootstrap memory to a few tens of MB whatever the size


class GateError(ValueError):
    """The gate was asked to compare evaluations it cannot compare."""


class BootstrapInterval(NamedTuple):
    """A paired bootstrap estimate of ``AUC(candidate) - AUC(champion)``.

    Attributes:
        diff: The difference on the original rows.
        lo: Lower end of the two-sided percentile interval.
        hi: Upper end of the two-sided percentile interval.
    """

    diff: float
    lo: float
    hi: float


@dataclass(frozen=True)
class GateCheck:
    """One rule of the gate and how the candidate fared.

    Attributes:
        name: Identifier, e.g. ``floor_auc`` or ``slice_auc_non_regression[small_business]``.
        passed: Whether the rule holds (skipped rules pass and say so).
        value: The measured number, when there is one.
        threshold: The limit it was held to, when there is one.
        reason: A sentence with the numbers, readable by someone who has not seen the code.
    """

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    reason: str


@dataclass(frozen=True)
class GateVerdict:
    """The decision on a candidate.

    Attributes:
        passed: Whether every check passed.
        compared_to_champion: Whether a champion was scored on the same rows.
        summary: One line for humans.
        checks: Every check, in evaluation order.
    """

    passed: bool
    compared_to_champion: bool
    summary: str
    checks: list[GateCheck] = field(default_factory=list)

    def reasons(self) -> list[str]:
        """Return the reasons of the failed checks."""
        return [check.reason for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable form."""
        return asdict(self)


def _resample_counts(size: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Return a ``(resamples, size)`` matrix: how often each of ``size`` rows is drawn."""
    draws = rng.integers(0, size, size=(resamples, size)) + (np.arange(resamples) * size)[:, None]
    counts = np.bincount(draws.ravel(), minlength=resamples * size)
    return counts.reshape(resamples, size).astype(float)


def weighted_auc(labels: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return the ROC AUC of each row of ``counts`` (row multiplicities), ties counting half.

    For each positive, the (weighted) number of negatives scored strictly below it plus half
    those tied with it is read off a cumulative sum over the negatives sorted by score, found with
    ``searchsorted``. One sort per model, then linear in ``resamples x rows``, and exactly equal to
    scikit-learn's ``roc_auc_score`` on the expanded resample.

    Args:
        labels: 0/1 labels, shape ``(n,)``.
        scores: Scores, shape ``(n,)``.
        counts: Multiplicities, shape ``(resamples, n)``.

    Returns:
        Shape ``(resamples,)``.
    """
    positive = labels == 1
    return _auc_from_counts(
        scores[positive], scores[~positive], counts[:, positive], counts[:, ~positive]
    )


def _auc_from_counts(
    pos_scores: np.ndarray,
    neg_scores: np.ndarray,
    pos_counts: np.ndarray,
    neg_counts: np.ndarray,
) -> np.ndarray:
    order = np.argsort(neg_scores, kind="stable")
    sorted_neg = neg_scores[order]
    cumulative = np.zeros((neg_counts.shape[0], sorted_neg.size + 1))
    np.cumsum(neg_counts[:, order], axis=1, out=cumulative[:, 1:])
    below = cumulative[:, np.searchsorted(sorted_neg, pos_scores, side="left")]
    up_to = cumulative[:, np.searchsorted(sorted_neg, pos_scores, side="right")]
    correct = (pos_counts * (below + 0.5 * (up_to - below))).sum(axis=1)
    return np.asarray(correct / (pos_counts.sum(axis=1) * neg_counts.sum(axis=1)), dtype=float)


def paired_bootstrap_auc_diff(
    y: Any,
    candidate_scores: Any,
    champion_scores: Any,
    resamples: int = 1_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> BootstrapInterval:
    """Estimate ``AUC(candidate) - AUC(champion)`` with a paired, class-stratified bootstrap.

    Both models are scored on the same resampled rows in every resample (that is the pairing:
    it removes the row-sampling noise the two AUCs share, so the interval is much narrower than
    one built from two independent intervals).

    Args:
        y: 0/1 labels.
        candidate_scores: Candidate probabilities for the same rows.
        champion_scores: Champion probabilities for the same rows.
        resamples: Bootstrap resamples.
        seed: Seed of the resampling.
        confidence: Two-sided confidence level of the interval.

    Returns:
        The difference on the original rows and the percentile interval.

    Raises:
        ValueError: Shapes differ or a class is missing.
    """
    labels = np.asarray(y).astype(np.int64).ravel()
    cand = np.asarray(candidate_scores, dtype=float).ravel()
    champ = np.asarray(champion_scores, dtype=float).ravel()
    if not labels.shape == cand.shape == champ.shape:
        raise ValueError(
            f"labels, candidate and champion scores differ in length: "
            f"{labels.size}, {cand.size}, {champ.size}"
        )
    if labels.min(initial=1) == labels.max(initial=0):
        raise ValueError("the paired bootstrap needs both classes in y")
    ones = np.ones((1, labels.size))
    observed = float(weighted_auc(labels, cand, ones)[0] - weighted_auc(labels, champ, ones)[0])
    # Positives and negatives are resampled separately (class-stratified), so every resample
    # keeps the class counts and its AUC is always defined.
    positive = labels == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    rng = np.random.default_rng(seed)
    chunk = max(1, _CELLS_PER_CHUNK // labels.size)
    diffs = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        pos_counts = _resample_counts(n_pos, size, rng)
        neg_counts = _resample_counts(n_neg, size, rng)
        cand_auc = _auc_from_counts(cand[positive], cand[~positive], pos_counts, neg_counts)
        champ_auc = _auc_from_counts(champ[positive], champ[~positive], pos_counts, neg_counts)
        diffs.append(cand_auc - champ_auc)
    all_diffs = np.concatenate(diffs)
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(all_diffs, [tail, 1.0 - tail])
    return BootstrapInterval(observed, float(lo), float(hi))


def _floor_checks(candidate: Evaluation, cfg: GateConfig) -> list[GateCheck]:
    m = candidate.metrics
    auc = m.auc if m.auc is not None else float("nan")
    checks = [
        GateCheck(
            "floor_auc",
            bool(auc >= cfg.min_auc),
            auc,
            cfg.min_auc,
            f"holdout ROC AUC {auc:.4f} {'meets' if auc >= cfg.min_auc else 'is below'} "
            f"the floor {cfg.min_auc:.4f}",
        )
    ]
    for name, value, ceiling in (
        ("log_loss", m.log_loss, cfg.max_log_loss),
        ("brier", m.brier, cfg.max_brier),
        ("ece", m.ece, cfg.max_ece),
    ):
        ok = value <= ceiling
        label = {"log_loss": "log loss", "brier": "Brier score", "ece": "calibration error"}[name]
        checks.append(
            GateCheck(
                f"ceiling_{name}",
                ok,
                value,
                ceiling,
                f"holdout {label} {value:.4f} {'is within' if ok else 'exceeds'} "
                f"the ceiling {ceiling:.4f}",
            )
        )
    return checks


def _non_regression(
    name: str,
    what: str,
    labels: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    margin: float,
    cfg: GateConfig,
) -> GateCheck:
    interval = paired_bootstrap_auc_diff(
        labels, candidate, champion, cfg.bootstrap_resamples, cfg.bootstrap_seed, cfg.confidence
    )
    passed = interval.hi >= -margin
    numbers = (
        f"AUC difference vs champion {interval.diff:+.4f}, "
        f"{cfg.confidence:.0%} CI [{interval.lo:+.4f}, {interval.hi:+.4f}]"
    )
    if passed:
        reason = f"{what}: {numbers}; not worse than the margin {margin:.3f} with confidence"
    else:
        reason = f"{what}: {numbers}; worse than the champion beyond the margin {margin:.3f}"
    return GateCheck(name, passed, interval.hi, -margin, reason)


def _slice_checks(candidate: Evaluation, champion: Evaluation, cfg: GateConfig) -> list[GateCheck]:
    if SEGMENT is None:
        return [
            GateCheck(
                "slice_auc_non_regression",
                True,
                None,
                None,
                "slice gates skipped: the contract names no segment column",
            )
        ]
    rows = candidate.rows
    checks = []
    for key in sorted(set(rows.slices.tolist())):
        mask = rows.slices == key
        labels = rows.labels[mask]
        name = f"slice_auc_non_regression[{key}]"
        if mask.sum() < cfg.min_slice_rows or labels.min() == labels.max():
            checks.append(
                GateCheck(
                    name,
                    True,
                    None,
                    None,
                    f"slice {key}: skipped, {int(mask.sum())} holdout rows "
                    f"(gated from {cfg.min_slice_rows}, both classes needed)",
                )
            )
            continue
        checks.append(
            _non_regression(
                name,
                f"slice {key}",
                labels,
                rows.scores[mask],
                champion.rows.scores[mask],
                cfg.slice_auc_margin,
                cfg,
            )
        )
    return checks


def _budget_checks(candidate: Evaluation, cfg: GateConfig) -> list[GateCheck]:
    latency_ok = candidate.latency_ms_per_row <= cfg.latency_budget_ms_per_row
    size_ok = candidate.size_bytes <= cfg.size_budget_bytes
    return [
        GateCheck(
            "latency_budget",
            latency_ok,
            candidate.latency_ms_per_row,
            cfg.latency_budget_ms_per_row,
            f"predict time {candidate.latency_ms_per_row:.4f} ms/row "
            f"{'is within' if latency_ok else 'exceeds'} the budget "
            f"{cfg.latency_budget_ms_per_row:.4f} ms/row",
        ),
        GateCheck(
            "size_budget",
            size_ok,
            float(candidate.size_bytes),
            float(cfg.size_budget_bytes),
            f"serialized model {candidate.size_bytes:,} bytes "
            f"{'is within' if size_ok else 'exceeds'} the budget {cfg.size_budget_bytes:,} bytes",
        ),
    ]


def decide(candidate: Evaluation, champion: Evaluation | None, cfg: GateConfig) -> GateVerdict:
    """Judge ``candidate`` against the floors, budgets and (when given) the champion.

    Args:
        candidate: The candidate's evaluation on the holdout.
        champion: The current champion's evaluation on the *same* holdout rows, or ``None``
            when there is no champion yet.
        cfg: Thresholds.

    Returns:
        The verdict with every check.

    Raises:
        GateError: The champion was evaluated on different rows.
    """
    if champion is not None and not candidate.rows.same_rows_as(champion.rows):
        raise GateError("the champion must be evaluated on the candidate's holdout rows")
    checks = _floor_checks(candidate, cfg)
    if champion is not None:
        rows = candidate.rows
        checks.append(
            _non_regression(
                "auc_non_regression",
                "overall",
                rows.labels,
                rows.scores,
                champion.rows.scores,
                cfg.auc_margin,
                cfg,
            )
        )
        checks.extend(_slice_checks(candidate, champion, cfg))
    checks.extend(
        GateCheck(f"behaviour:{b.name}", b.passed, b.value, None, b.detail)
        for b in candidate.behaviour
    )
    checks.extend(_budget_checks(candidate, cfg))
    failed = [check for check in checks if not check.passed]
    scope = (
        "against the champion on the same holdout rows"
        if champion is not None
        else "no champion yet: absolute floors, behaviour and budgets only"
    )
    if failed:
        summary = f"rejected ({scope}): {len(failed)} of {len(checks)} checks failed"
    else:
        summary = f"passed ({scope}): all {len(checks)} checks"
    return GateVerdict(not failed, champion is not None, summary, checks)
