"""The judge benchmark: our canary judge against two peers on the same simulated canaries.

``mlplat bench judge --out FILE`` calls :func:`run_judge_benchmark`, which runs
:func:`monitoring.simulation.run_simulation` and writes one JSON file with, per judge and scenario,
the false rollback rate (the ``null`` scenario, checked after every window), detection rate and
time to detect for the regressions, and how the other canaries ended (promoted, paused); then the
configuration, the machine, the wall time, and a ``goals`` section that checks the issue's three
goals against those numbers. :func:`format_table` renders the figures for a terminal.

Time to detect counts windows from the canary's start to its rollback; a canary never rolled back
counts as never detected, so the median exists only when at least half the canaries are caught.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from scipy import integrate, special, stats

from monitoring.judge import JudgeConfig, SignalName, VerdictCode
from monitoring.sequential import mixture_radius
from monitoring.simulation import (
    BatchJudge,
    JudgeOutcome,
    Scenario,
    SimulationParams,
    Traffic,
    argo_judge,
    default_judges,
    run_simulation,
)

__all__ = ["BenchmarkError", "format_table", "run_judge_benchmark"]

COMMAND = "mlplat bench judge --out FILE"
OURS, PEERS = "ours", ("argo", "kayenta")
# The regressions every judge monitors: the comparison of detection times is made on these.
COMPARABLE = ("error+1pt", "error+3pt", "latency x1.5")
GOAL_FALSE_ROLLBACK = 0.01
GOAL_PAUSE = 0.01
GOAL_DETECTION_NEW = 0.90
# The first edition's figures (bench-results/judge.json before the judge issue): detection rate
# and median windows to detect, which this edition must not make worse.
PREVIOUS_DETECTION = {
    "error+1pt": (0.999, 7.0),
    "error+3pt": (1.0, 2.0),
    "latency x1.5": (1.0, 1.0),
}
# Binomial noise allowed below a previous detection rate of ~100 % at 1,000 canaries.
_DETECTION_SLACK = 0.005
NEW_REGRESSIONS = ("tail-only", "slice-only: +3 pt")


class BenchmarkError(ValueError):
    """Bad benchmark arguments; the message names the argument and the rule."""


def _quantile_or_none(values: np.ndarray[Any, np.dtype[np.float64]], q: float) -> float | None:
    """The ``q`` quantile, or ``None`` when it is infinite (fewer than ``q`` of runs detected)."""
    value = float(np.quantile(values, q, method="inverted_cdf"))
    return value if math.isfinite(value) else None


def _wilson(successes: int, trials: int, z: float = 1.959963984540054) -> list[float]:
    if trials == 0:
        return [0.0, 1.0]
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def summarise(outcome: JudgeOutcome) -> dict[str, Any]:
    """Rates and detection times of one judge on one scenario."""
    runs = int(outcome.verdict.size)
    verdict, window = outcome.verdict, outcome.window.astype(np.float64)

    def share(code: VerdictCode) -> float:
        return float(np.mean(verdict == code))

    def conditional_median(code: VerdictCode) -> float | None:
        picked = window[verdict == code]
        return float(np.median(picked)) if picked.size else None

    to_detect = np.where(verdict == VerdictCode.ROLLBACK, window, np.inf)
    rollbacks = int(np.sum(verdict == VerdictCode.ROLLBACK))
    return {
        "runs": runs,
        "rollback_rate": rollbacks / runs,
        "rollback_rate_95ci": _wilson(rollbacks, runs),
        "median_windows_to_rollback": _quantile_or_none(to_detect, 0.5),
        "p90_windows_to_rollback": _quantile_or_none(to_detect, 0.9),
        "promote_rate": share(VerdictCode.PROMOTE),
        "median_windows_to_promote": conditional_median(VerdictCode.PROMOTE),
        "inconclusive_rate": share(VerdictCode.INCONCLUSIVE),
        "median_windows_to_inconclusive": conditional_median(VerdictCode.INCONCLUSIVE),
        "undecided_rate": share(VerdictCode.CONTINUE),
        "stopped_rate": float(
            np.mean((verdict == VerdictCode.ROLLBACK) | (verdict == VerdictCode.INCONCLUSIVE))
        ),
    }


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


def _labels_needed(scenario: Scenario, config: JudgeConfig) -> dict[str, Any]:
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


def _argo_sensitivity(params: SimulationParams) -> list[BatchJudge]:
    """Argo with ``failureLimit: 1``: faster to fail, and to fail wrongly."""
    return [argo_judge(params, failure_limit=1, name="argo[failureLimit=1]")]


def _goals(
    table: Mapping[str, Mapping[str, Mapping[str, Any]]], scenarios: Sequence[Scenario]
) -> dict[str, Any]:
    ours = table[OURS]
    healthy = [s.name for s in scenarios if not s.regression and not s.extra]
    per_healthy = {
        name: {
            "rollback_rate": ours[name]["rollback_rate"],
            "pause_rate": ours[name]["inconclusive_rate"],
            "met": ours[name]["rollback_rate"] <= GOAL_FALSE_ROLLBACK
            and ours[name]["inconclusive_rate"] <= GOAL_PAUSE,
        }
        for name in healthy
    }
    new = [s.name for s in scenarios if s.name.startswith(NEW_REGRESSIONS)]
    per_new = {
        name: {
            "detection_rate": ours[name]["rollback_rate"],
            "met": ours[name]["rollback_rate"] >= GOAL_DETECTION_NEW,
        }
        for name in new
    }
    per_previous = {}
    for name, (rate, median) in PREVIOUS_DETECTION.items():
        if name not in ours:
            continue
        now_rate, now_median = ours[name]["rollback_rate"], ours[name]["median_windows_to_rollback"]
        per_previous[name] = {
            "previous": {"detection_rate": rate, "median_windows": median},
            "now": {"detection_rate": now_rate, "median_windows": now_median},
            "met": now_rate >= rate - _DETECTION_SLACK
            and now_median is not None
            and now_median <= median,
        }
    by_peer: dict[str, Any] = {}
    for peer in PEERS:
        if peer not in table:
            continue
        theirs = table[peer]
        fewer_false = all(ours[n]["rollback_rate"] <= theirs[n]["rollback_rate"] for n in healthy)
        timing: dict[str, Any] = {}
        for scenario in COMPARABLE:
            if scenario not in ours:
                continue
            mine = ours[scenario]["median_windows_to_rollback"]
            other = theirs[scenario]["median_windows_to_rollback"]
            timing[scenario] = {
                "ours_median": mine,
                "peer_median": other,
                "not_slower": mine is not None and (other is None or mine <= other),
            }
        by_peer[peer] = {
            "false_rollbacks_not_more_on_any_healthy_scenario": fewer_false,
            "median_windows_to_detect": timing,
            "met": fewer_false and all(t["not_slower"] for t in timing.values()),
        }
    return {
        "healthy_canaries_false_rollbacks_and_pauses_at_most_1pct": {
            "met": all(v["met"] for v in per_healthy.values()),
            "goal": {"rollback_rate": GOAL_FALSE_ROLLBACK, "pause_rate": GOAL_PAUSE},
            "by_scenario": per_healthy,
        },
        "tail_and_slice_regressions_detected_at_least_90pct": {
            "met": bool(per_new) and all(v["met"] for v in per_new.values()),
            "goal": GOAL_DETECTION_NEW,
            "by_scenario": per_new,
        },
        "previous_detection_no_worse": {
            "met": all(v["met"] for v in per_previous.values()),
            "by_scenario": per_previous,
        },
        "no_more_false_rollbacks_than_peers_no_slower": {
            "met": all(p["met"] for p in by_peer.values()),
            "comparable_scenarios": list(COMPARABLE),
            "by_peer": by_peer,
        },
    }


def _write_atomically(path: Path, payload: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=2, sort_keys=False)
            stream.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _scenario_dict(scenario: Scenario) -> dict[str, Any]:
    """The scenario's settings, with only the traffic fields that differ from the default."""
    fields = asdict(scenario)
    traffic = fields.pop("traffic")
    default = asdict(Traffic())
    fields["traffic"] = {k: v for k, v in traffic.items() if default[k] != v}
    fields.pop("name")
    return fields


def run_judge_benchmark(
    out: Path,
    *,
    runs: int = 1000,
    seed: int = 20240917,
    params: SimulationParams | None = None,
) -> dict[str, Any]:
    """Run the judge benchmark and write its figures to ``out`` (JSON, written atomically).

    Args:
        out: Where to write the JSON (parent directories are created).
        runs: Simulated canaries per scenario (each judged by every judge).
        seed: Seed of the simulation.
        params: Every simulation parameter (then ``runs`` and ``seed`` are ignored); the
            default is :class:`~monitoring.simulation.SimulationParams` with ``runs`` and ``seed``.

    Returns:
        The figures written.

    Raises:
        BenchmarkError: ``runs`` out of range.
    """
    params = params or SimulationParams(seed=seed, runs=runs)
    if params.runs < 10:
        raise BenchmarkError(f"runs must be >= 10 to estimate rates, got {params.runs}")
    judges = default_judges(params)
    sensitivity = _argo_sensitivity(params)
    started = time.perf_counter()
    outcomes = run_simulation(params, [*judges, *sensitivity])
    wall = time.perf_counter() - started

    table = {
        judge: {scenario: summarise(outcome) for scenario, outcome in by_scenario.items()}
        for judge, by_scenario in outcomes.items()
    }
    main = {j.name: table[j.name] for j in judges}
    ours_config = JudgeConfig()
    quality = {s.name: _labels_needed(s, ours_config) for s in params.scenarios if s.auc_change < 0}
    result: dict[str, Any] = {
        "benchmark": "judge",
        "command": COMMAND,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_time_s": round(wall, 2),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "parameters": params.to_dict(),
        "judges": {j.name: j.settings() for j in judges},
        "results": main,
        "scenarios": {
            s.name: {"healthy": not s.regression, "extra": s.extra, **_scenario_dict(s)}
            for s in params.scenarios
        },
        "goals": _goals(main, params.scenarios),
        "quality_labels_needed": quality,
        "sensitivity": {
            "argo[failureLimit=1]": {
                "settings": sensitivity[0].settings(),
                "results": table["argo[failureLimit=1]"],
            }
        },
        "notes": [
            "Every judge is checked after every window; a canary's first terminal verdict ends it.",
            "One window is one minute of traffic (the controller's judge_window_seconds). Ours "
            "acts through the controller's rules: no promotion before 15 windows and 1,000 canary "
            "requests, the circuit breaker (>= 50% canary errors over >= 50 requests in a "
            "window) rolls back without the judge; it may extend a canary up to "
            "max_windows * extension_factor windows. The peers run peer_windows windows.",
            "rollback_rate is the false rollback rate in the healthy scenarios and the detection "
            "rate in the regressions; inconclusive_rate is the share of canaries paused (a person "
            "paged); median/p90 windows to rollback count undetected canaries as never detected.",
            "The peers monitor error rate and p95 latency, the metrics their documentation's "
            "examples use; delayed-label quality is not among them, so their quality rows are "
            "what those metrics see.",
            "Kayenta compares the canary with a canary-sized baseline (a random share of the "
            "champion's traffic), as its documentation requires; Argo reads the canary alone.",
            "Scenarios marked extra are reported, not used by the goals.",
            "quality_labels_needed: how many labelled canary predictions the quality signal "
            "would need to roll each quality scenario back, from the binormal model's exact "
            "log-loss moments.",
        ],
    }
    _write_atomically(out, result)
    return result


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _windows(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def format_table(result: Mapping[str, Any]) -> str:
    """A plain-text table of a benchmark result, one row per scenario and judge."""
    header = (
        f"{'scenario':<42} {'judge':<8} {'rollback':>9} {'median':>6} {'p90':>4} "
        f"{'promote':>8} {'paused':>7} {'open':>6}"
    )
    lines = [header, "-" * len(header)]
    results: Mapping[str, Mapping[str, Mapping[str, Any]]] = result["results"]
    scenarios = next(iter(results.values())).keys()
    for scenario in scenarios:
        for judge, by_scenario in results.items():
            row = by_scenario[scenario]
            lines.append(
                f"{scenario[:42]:<42} {judge:<8} {_pct(row['rollback_rate']):>9} "
                f"{_windows(row['median_windows_to_rollback']):>6} "
                f"{_windows(row['p90_windows_to_rollback']):>4} {_pct(row['promote_rate']):>8} "
                f"{_pct(row['inconclusive_rate']):>7} {_pct(row['undecided_rate']):>6}"
            )
    lines.append("")
    for name, goal in result["goals"].items():
        lines.append(f"goal {name.replace('_', ' ')}: {'met' if goal['met'] else 'NOT met'}")
    params, machine = result["parameters"], result["machine"]
    lines.append(
        f"{params['runs']} canaries per scenario, up to {params['windows']} one-minute windows "
        f"each; wall time {result['wall_time_s']} s on {machine['cpu_count']} CPUs"
    )
    return "\n".join(lines)
