"""The judge's thresholds and error budgets, in one validated config."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitoring.judge.results import SLICE_SIGNALS, SignalName

__all__ = ["JudgeConfig"]


class JudgeConfig(BaseModel):
    """Thresholds and budgets of the canary judge.

    Attributes:
        alpha_rollback: Probability, over the canary's whole life, of rolling back a canary that
            is within every floor (split evenly across the tests that may roll back).
        alpha_promote: Probability of promoting a canary that is beyond a margin.
        error_rate_floor: Error-rate increase (absolute, 0.001 = 0.1 point) worth a rollback.
        error_rate_margin: Largest error-rate increase a promotion accepts, at most.
        error_rate_relative_margin: The margin as a share of the champion's rate (0.5 = +50 %),
            when that is smaller than ``error_rate_margin``.
        error_rate_margin_min: The margin never goes below this (a champion with no errors).
        error_rate_min_requests: Requests each variant needs before the error rate is judged.
        error_rate_mixture_scale: Rate difference where the confidence sequence is tightest.
        latency_ratio_floor: Geometric-mean latency ratio (canary / champion) worth a rollback.
        latency_ratio_margin: Largest latency ratio a promotion accepts.
        latency_min_samples: Latency observations each variant needs before latency is judged.
        latency_mixture_scale: Log-ratio where the latency sequence is tightest.
        tail_floor: Increase of the share above that quantile worth a rollback (0.005 = half a
            point: at p99, 1.5 times the champion's tail).
        tail_margin: Largest increase of that share a promotion accepts.
        tail_min_samples: Latency observations each variant needs before the tail is judged.
        tail_mixture_scale: Share difference where the tail sequence is tightest.
        quality_floor: Increase in mean per-row loss (nats of log loss) worth a rollback.
        quality_margin: Largest loss increase a promotion accepts.
        quality_min_labels: Labelled predictions each variant needs before quality is judged.
        quality_mixture_scale: Loss difference where the quality sequence is tightest.
        quality_required_for_promotion: Whether promotion waits for quality to prove its margin.
        slice_error_rate_floor: Error-rate increase within a slice worth a rollback.
        slice_error_rate_margin: Largest error-rate increase within a slice a promotion accepts.
        slice_min_requests: Requests each variant needs in a slice before it is judged.
        slice_min_customers: Routing-key groups (customers) each variant needs in a slice before
            it is judged: a slice served by a handful of customers compares those customers,
            not the models, and no variance estimate from so few is trustworthy.
        slice_min_share: Slices with at least this share of the canary's requests must be shown
            not worse before a promotion; thinner slices are checked for rollback only.
        slice_quality_floor: Loss increase within a slice worth a rollback.
        slice_quality_margin: Loss increase within a slice reported as not worse.
        slice_min_labels: Labelled predictions each variant needs in a slice.
        slice_mixture_scale: Difference where the slice sequences are tightest.
        psi_floor: PSI between the score distributions that the guardrail tolerates.
        psi_alpha: Probability, over all windows, that the guardrail fires on an unchanged canary.
        psi_min_samples: Scores each variant needs before the guardrail is checked.
        prediction_shift_action: ``"pause"`` (INCONCLUSIVE, page a human) or ``"rollback"``.
        rollback_alpha_shares: How ``alpha_rollback`` is split between the signals (weights
            per signal name; see :meth:`rollback_alpha`).
        min_windows_before_promote: Windows that must pass before a promotion.
        max_windows: Windows after which an undecided canary pages, unless it is on course.
        extension_factor: An on-course canary runs up to ``max_windows * extension_factor``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    alpha_rollback: float = Field(0.01, gt=0.0, lt=0.5)
    alpha_promote: float = Field(0.05, gt=0.0, lt=0.5)

    error_rate_floor: float = Field(0.001, ge=0.0, lt=1.0)
    error_rate_margin: float = Field(0.005, gt=0.0, lt=1.0)
    error_rate_relative_margin: float = Field(0.5, gt=0.0)
    error_rate_margin_min: float = Field(0.002, gt=0.0, lt=1.0)
    error_rate_min_requests: int = Field(400, ge=1)
    error_rate_mixture_scale: float = Field(0.01, gt=0.0)

    latency_ratio_floor: float = Field(1.1, ge=1.0)
    latency_ratio_margin: float = Field(1.2, gt=1.0)
    latency_min_samples: int = Field(100, ge=2)
    latency_mixture_scale: float = Field(0.2, gt=0.0)

    tail_floor: float = Field(0.005, ge=0.0, lt=1.0)
    tail_margin: float = Field(0.01, gt=0.0, lt=1.0)
    tail_min_samples: int = Field(400, ge=1)
    tail_mixture_scale: float = Field(0.01, gt=0.0)

    quality_floor: float = Field(0.002, ge=0.0)
    quality_margin: float = Field(0.005, gt=0.0)
    quality_min_labels: int = Field(200, ge=2)
    quality_mixture_scale: float = Field(0.01, gt=0.0)
    quality_required_for_promotion: bool = False

    slice_error_rate_floor: float = Field(0.005, ge=0.0, lt=1.0)
    slice_error_rate_margin: float = Field(0.02, gt=0.0, lt=1.0)
    slice_min_requests: int = Field(200, ge=1)
    slice_min_customers: int = Field(20, ge=0)
    slice_min_share: float = Field(0.05, ge=0.0, le=1.0)
    slice_quality_floor: float = Field(0.02, ge=0.0)
    slice_quality_margin: float = Field(0.05, gt=0.0)
    slice_min_labels: int = Field(100, ge=2)
    slice_mixture_scale: float = Field(0.02, gt=0.0)

    psi_floor: float = Field(0.2, gt=0.0)
    psi_alpha: float = Field(0.005, gt=0.0, lt=0.5)
    psi_min_samples: int = Field(400, ge=1)
    prediction_shift_action: Literal["pause", "rollback"] = "pause"

    rollback_alpha_shares: dict[str, float] = Field(
        default_factory=lambda: {
            SignalName.ERROR_RATE.value: 0.3,
            SignalName.LATENCY.value: 0.15,
            SignalName.LATENCY_TAIL.value: 0.15,
            SignalName.QUALITY.value: 0.1,
            SignalName.SLICE_ERROR_RATE.value: 0.2,
            SignalName.SLICE_QUALITY.value: 0.1,
            SignalName.PREDICTIONS.value: 0.1,
        }
    )

    min_windows_before_promote: int = Field(3, ge=1)
    max_windows: int = Field(30, ge=1)
    extension_factor: int = Field(10, ge=1, le=20)

    @model_validator(mode="after")
    def _floors_below_margins(self) -> Self:
        pairs = (
            (
                "error_rate_floor",
                self.error_rate_floor,
                "error_rate_margin",
                self.error_rate_margin,
            ),
            (
                "latency_ratio_floor",
                self.latency_ratio_floor,
                "latency_ratio_margin",
                self.latency_ratio_margin,
            ),
            ("tail_floor", self.tail_floor, "tail_margin", self.tail_margin),
            ("quality_floor", self.quality_floor, "quality_margin", self.quality_margin),
            (
                "slice_error_rate_floor",
                self.slice_error_rate_floor,
                "slice_error_rate_margin",
                self.slice_error_rate_margin,
            ),
            (
                "slice_quality_floor",
                self.slice_quality_floor,
                "slice_quality_margin",
                self.slice_quality_margin,
            ),
            (
                "error_rate_margin_min",
                self.error_rate_margin_min,
                "error_rate_margin",
                self.error_rate_margin,
            ),
        )
        for floor_name, floor, margin_name, margin in pairs:
            if floor > margin:
                raise ValueError(
                    f"{floor_name} ({floor}) must not exceed {margin_name} ({margin}): a "
                    "regression worth a rollback cannot be one a promotion accepts"
                )
        unknown = set(self.rollback_alpha_shares) - {n.value for n in SignalName}
        missing = {n.value for n in SignalName} - set(self.rollback_alpha_shares)
        if unknown or missing:
            raise ValueError(
                "rollback_alpha_shares must name every signal once: "
                f"unknown {sorted(unknown)}, missing {sorted(missing)}"
            )
        if any(v <= 0 for v in self.rollback_alpha_shares.values()):
            raise ValueError("rollback_alpha_shares must all be > 0")
        if self.min_windows_before_promote > self.max_windows:
            raise ValueError(
                f"min_windows_before_promote ({self.min_windows_before_promote}) must not exceed "
                f"max_windows ({self.max_windows})"
            )
        return self

    @property
    def hard_max_windows(self) -> int:
        """Windows after which an undecided canary pages whatever its course."""
        return self.max_windows * self.extension_factor

    @property
    def rollback_signals(self) -> tuple[SignalName, ...]:
        """Signals whose regression rolls the canary back."""
        signals = (
            SignalName.ERROR_RATE,
            SignalName.LATENCY,
            SignalName.LATENCY_TAIL,
            SignalName.QUALITY,
            SignalName.SLICE_ERROR_RATE,
            SignalName.SLICE_QUALITY,
        )
        if self.prediction_shift_action == "rollback":
            return (*signals, SignalName.PREDICTIONS)
        return signals

    @property
    def promotion_signals(self) -> tuple[SignalName, ...]:
        """Signals that must be *not worse* (when collected) before a promotion."""
        signals = (
            SignalName.ERROR_RATE,
            SignalName.LATENCY,
            SignalName.LATENCY_TAIL,
            SignalName.SLICE_ERROR_RATE,
            SignalName.PREDICTIONS,
        )
        if self.quality_required_for_promotion:
            return (*signals, SignalName.QUALITY)
        return signals

    def rollback_alpha(self, slices: int) -> dict[SignalName, float]:
        """The share of ``alpha_rollback`` each test may spend (weighted Bonferroni).

        Each rollback signal gets its ``rollback_alpha_shares`` weight, renormalised over the
        signals that can roll back (slice signals only when there are slices); a slice signal's
        share is split evenly across the slices. The shares sum to ``alpha_rollback``, so a
        canary within every floor is rolled back with probability at most that, over every
        signal, slice and look.

        Args:
            slices: How many slices the traffic has.

        Returns:
            The alpha of one test of each signal (of one slice, for a slice signal).
        """
        live = [name for name in self.rollback_signals if name not in SLICE_SIGNALS or slices > 0]
        total = sum(self.rollback_alpha_shares[name.value] for name in live)
        alpha = {}
        for name in live:
            share = self.alpha_rollback * self.rollback_alpha_shares[name.value] / total
            alpha[name] = share / slices if name in SLICE_SIGNALS else share
        return alpha
