"""The table ``mlplat bench serve`` prints: in-process paths, HTTP targets and the goals."""

from __future__ import annotations

from typing import Any

from benchmarks.report import markdown_table, verdict
from benchmarks.serving.goals import GOAL_CONCURRENCY, INSTRUMENTATION_GOAL, THROUGHPUT_GOAL

__all__ = ["format_table"]


def format_table(result: dict[str, Any]) -> str:
    """Render the figures as Markdown tables (what the write-ups quote)."""
    proba = markdown_table(
        ["rows", "predict_proba ms/call", "ms/row"],
        [
            [size, f"{figures['ms_per_call']:.2f}", f"{figures['ms_per_row']:.3f}"]
            for size, figures in result["predict_proba"].items()
        ],
        text_columns=0,
    )
    http = markdown_table(
        ["target", "concurrency", "requests/s", "p50 ms", "p99 ms", "CPU us/request", "errors"],
        [
            _http_row(name, concurrency, figures)
            for name, by_c in result["http"].items()
            for concurrency, figures in by_c.items()
        ],
    )
    paths = _paths_table(result)
    return "\n".join([proba, "", *paths, http, "", *_goal_lines(result["goals"])])


def _paths_table(result: dict[str, Any]) -> list[str]:
    """The two inference paths per records per call, and what each service served through."""
    paths = result.get("inference_paths")
    if not paths:
        return []
    table = markdown_table(
        ["rows", "reference ms/call", "compiled ms/call", "speedup", "compiled us/row"],
        [
            [
                size,
                f"{figures['ms_per_call']:.3f}",
                f"{paths['compiled'][size]['ms_per_call']:.3f}",
                f"{paths['speedup'][size]:.1f}x",
                f"{paths['compiled'][size]['ms_per_row'] * 1000:.1f}",
            ]
            for size, figures in paths["reference"].items()
        ],
        text_columns=0,
    )
    served = ", ".join(
        f"{name}: {path['inference_path']}" for name, path in result.get("served_paths", {}).items()
    )
    lines = [
        table,
        f"largest |difference| of the compiled path: {paths['max_difference']:.3g} "
        f"(tolerance {paths['tolerance']:g})",
    ]
    if served:
        lines.append(f"served through: {served}")
    return [*lines, ""]


def _http_row(name: str, concurrency: str, figures: dict[str, Any]) -> list[object]:
    cpu = figures.get("cpu_us_per_request")
    return [
        name,
        concurrency,
        f"{figures['requests_per_second']:.1f}",
        f"{figures['p50_ms']:.2f}",
        f"{figures['p99_ms']:.2f}",
        "-" if cpu is None else f"{cpu:.0f}",
        figures["errors"],
    ]


def _goal_lines(goals: dict[str, Any]) -> list[str]:
    lines = []
    if "throughput_ratio" in goals:
        lines.append(
            f"service/naive throughput at c={GOAL_CONCURRENCY}: {goals['throughput_ratio']:.2f}x "
            f"(goal >= {THROUGHPUT_GOAL:g}x: {verdict(goals['throughput_goal_met'])}); "
            f"p99 ratio {goals['p99_ratio']:.2f} (goal <= 1: {verdict(goals['p99_goal_met'])})"
        )
    change = goals["instrumentation"]
    q1, q3 = change["throughput_cost_iqr"]
    said = {"met": "met", "missed": "MISSED"}.get(change["verdict"], "INCONCLUSIVE: noise")
    lines.append(
        f"throughput cost of metrics + inference log at c={GOAL_CONCURRENCY}: "
        f"{change['throughput_cost']:+.1%} (median of {change['pairs']} side-by-side pairs, "
        f"IQR {q1:+.1%} to {q3:+.1%}; goal within {INSTRUMENTATION_GOAL:.0%}: {said})"
    )
    detail = f"CPU they add: {goals['instrumentation_cpu_us_per_request']:.1f} us per request"
    if "instrumentation_cpu_share" in goals:
        detail += f" in-process, {goals['instrumentation_cpu_share']:.1%} of the service's CPU"
    if "cpu_cost" in change:
        detail += f"; measured across the pairs: {change['cpu_cost']:+.1%}"
    lines.append(detail)
    return lines
