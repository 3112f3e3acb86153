"""The judge benchmark's four goals, checked against its own figures.

1. Healthy canaries: at most 1 % rolled back and at most 1 % paused, in every healthy scenario.
2. Tail-only and slice-only regressions: detected at least 90 % of the time.
3. The regressions the first edition already caught: detected no less often, no later.
4. Against each peer: no more false rollbacks on any healthy scenario, and not slower to detect
   the regressions every judge monitors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.judge.scenarios import Scenario
from benchmarks.report import goal

__all__ = ["COMPARABLE", "GOAL_DETECTION_NEW", "GOAL_FALSE_ROLLBACK", "GOAL_PAUSE", "judge_goals"]

Table = Mapping[str, Mapping[str, Mapping[str, Any]]]
"""``{judge: {scenario: figures}}``, as :func:`benchmarks.judge.run.summarise` makes them."""

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


def judge_goals(table: Table, scenarios: Sequence[Scenario]) -> dict[str, Any]:
    """Each goal with ``met`` and the figures it was judged on, per scenario."""
    ours = table[OURS]
    healthy = [s.name for s in scenarios if not s.regression and not s.extra]
    new = [s.name for s in scenarios if s.name.startswith(NEW_REGRESSIONS)]
    return {
        "healthy_canaries_false_rollbacks_and_pauses_at_most_1pct": _healthy(ours, healthy),
        "tail_and_slice_regressions_detected_at_least_90pct": _new_regressions(ours, new),
        "previous_detection_no_worse": _previous(ours),
        "no_more_false_rollbacks_than_peers_no_slower": _peers(table, healthy),
    }


def _healthy(ours: Mapping[str, Mapping[str, Any]], healthy: Sequence[str]) -> dict[str, Any]:
    by_scenario = {
        name: goal(
            ours[name]["rollback_rate"] <= GOAL_FALSE_ROLLBACK
            and ours[name]["inconclusive_rate"] <= GOAL_PAUSE,
            rollback_rate=ours[name]["rollback_rate"],
            pause_rate=ours[name]["inconclusive_rate"],
        )
        for name in healthy
    }
    return goal(
        all(v["met"] for v in by_scenario.values()),
        goal={"rollback_rate": GOAL_FALSE_ROLLBACK, "pause_rate": GOAL_PAUSE},
        by_scenario=by_scenario,
    )


def _new_regressions(ours: Mapping[str, Mapping[str, Any]], new: Sequence[str]) -> dict[str, Any]:
    by_scenario = {
        name: goal(
            ours[name]["rollback_rate"] >= GOAL_DETECTION_NEW,
            detection_rate=ours[name]["rollback_rate"],
        )
        for name in new
    }
    return goal(
        bool(by_scenario) and all(v["met"] for v in by_scenario.values()),
        goal=GOAL_DETECTION_NEW,
        by_scenario=by_scenario,
    )


def _previous(ours: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    by_scenario = {}
    for name, (rate, median) in PREVIOUS_DETECTION.items():
        if name not in ours:
            continue
        now_rate, now_median = ours[name]["rollback_rate"], ours[name]["median_windows_to_rollback"]
        by_scenario[name] = goal(
            now_rate >= rate - _DETECTION_SLACK and now_median is not None and now_median <= median,
            previous={"detection_rate": rate, "median_windows": median},
            now={"detection_rate": now_rate, "median_windows": now_median},
        )
    return goal(all(v["met"] for v in by_scenario.values()), by_scenario=by_scenario)


def _peers(table: Table, healthy: Sequence[str]) -> dict[str, Any]:
    ours = table[OURS]
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
        by_peer[peer] = goal(
            fewer_false and all(t["not_slower"] for t in timing.values()),
            false_rollbacks_not_more_on_any_healthy_scenario=fewer_false,
            median_windows_to_detect=timing,
        )
    return goal(
        all(p["met"] for p in by_peer.values()),
        comparable_scenarios=list(COMPARABLE),
        by_peer=by_peer,
    )
