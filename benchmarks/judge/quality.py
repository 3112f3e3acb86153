"""How many labels the quality signal needs: the arithmetic behind ``quality_labels_needed``.

The quality scenarios lower the canary model's AUC; whether our judge can roll them back within
a canary's life depends on how many labelled canary predictions arrive. This computes, from the
binormal model's exact log-loss moments, the smallest labelled sample at which the expected
estimate's anytime-valid lower bound clears the judge's quality floor.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import integrate, special, stats

from benchmarks.judge.scenarios import Scenario
from monitoring.judge import JudgeConfig, SignalName
from monitoring.judge.sequential import mixture_radius

__all__ = ["labels_needed"]


def _binormal_log_loss(auc: float, default_rate: float) -> tuple[float, float]:
    """Mean and standard deviation of per-row log loss of a calibrated binormal model."""
    mu = math.sqrt(2.0) * float(stats.norm.ppf(auc))
    c = float(special.logit(default_rate))

    def moment(power: int) -> float:
        def integrand(s: float) -> float:
            log_odds = c + mu * s - mu * mu / 2.0
            positive = float(np.logaddexp(0.0, -log_odds)) ** power * float(stats.norm.pdf(s - mu))
            negative = float(np.logaddexp(0.0, log_odds)) ** power * float(stats.norm.pdf(s))
            return default_rate * positive + (1.0 - default_rate) * negative

        value, _ = integrate.quad(integrand, -12.0, 12.0 + mu, limit=200)
        return float(value)

    mean = moment(1)
    return mean, math.sqrt(max(moment(2) - mean * mean, 0.0))


def labels_needed(scenario: Scenario, config: JudgeConfig) -> dict[str, Any]:
    """Labelled canary predictions the quality signal needs to roll this scenario back.

    The smallest canary sample at which the expected estimate's anytime-valid lower bound clears
    the floor (champion labels in proportion to traffic), from the binormal model's exact loss
    moments.
    """
    t = scenario.traffic
    mean0, sd0 = _binormal_log_loss(t.champion_auc, t.default_rate)
    mean1, sd1 = _binormal_log_loss(t.champion_auc + scenario.auc_change, t.default_rate)
    effect = mean1 - mean0
    weight = t.canary_weight[-1]
    ratio = (1.0 - weight) / weight
    alpha = config.rollback_alpha(len(t.slices))[SignalName.QUALITY]
    needed: int | None = None
    if effect > config.quality_floor:
        low, high = 1.0, 1e9
        for _ in range(80):
            mid = math.sqrt(low * high)
            variance = sd1 * sd1 / mid + sd0 * sd0 / (ratio * mid)
            radius = float(
                mixture_radius(variance, alpha=alpha, mixture_scale=config.quality_mixture_scale)
            )
            low, high = (mid, high) if effect - radius <= config.quality_floor else (low, mid)
        needed = math.ceil(high)
    labels_per_window = t.requests_per_window * weight * t.label_fraction
    return {
        "log_loss_increase": effect,
        "per_row_sd": sd1,
        "labelled_canary_predictions_needed": needed,
        "labelled_canary_predictions_per_window": labels_per_window,
        "windows_needed": None
        if needed is None
        else math.ceil(needed / labels_per_window) + max(t.label_lags),
    }
