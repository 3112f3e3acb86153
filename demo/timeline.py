"""The demo's timeline: the rates of :mod:`demo.samples` plotted, with the verdicts marked.

:func:`plot_timeline` draws three panels sharing the time axis and writes a PNG. It uses
matplotlib's object API on the Agg canvas (no pyplot state, no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from demo.samples import Series
from interfaces.files import write_atomically
from interfaces.routing import CANARY, CHAMPION, VARIANTS

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "Marker",
    "MarkerKind",
    "Phase",
    "plot_timeline",
]

MarkerKind = Literal["rollback", "promote", "pause", "drift", "canary", "note"]

_VARIANT_COLOURS: Final[dict[str, str]] = {CHAMPION: "#1f77b4", CANARY: "#ff7f0e"}
_MARKER_COLOURS: Final[dict[MarkerKind, str]] = {
    "rollback": "#d62728",
    "promote": "#2ca02c",
    "pause": "#9467bd",
    "drift": "#8c564b",
    "canary": "#7f7f7f",
    "note": "#7f7f7f",
}


@dataclass(frozen=True)
class Marker:
    """A moment worth a vertical line: a verdict, a canary start, a drift alert.

    Attributes:
        t: Seconds since the demo started.
        label: What happened, in a few words.
        kind: Decides the colour.
    """

    t: float
    label: str
    kind: MarkerKind


@dataclass(frozen=True)
class Phase:
    """A shaded span of the timeline: one scenario.

    Attributes:
        start: Seconds since the demo started.
        end: Seconds since the demo started.
        label: The scenario's short name.
    """

    start: float
    end: float
    label: str


def plot_timeline(
    series: Series,
    markers: Iterable[Marker],
    phases: Iterable[Phase],
    path: Path,
    *,
    title: str = "mlplat demo: the closed loop",
    window_s: float = 5.0,
) -> Path:
    """Draw the timeline and write it as a PNG (atomically: temp file, then rename).

    Panels, sharing the time axis: the error rate of each variant on delayed labels (and 5xx
    errors over requests, dotted, when there were any), the canary weight the service applied,
    and the champion's largest feature drift score. Every marker is a vertical line through all
    panels, labelled in the top panel; every phase is a shaded, labelled band.

    Args:
        series: What :func:`build_series` computed.
        markers: Verdicts and other moments.
        phases: The scenarios' spans.
        path: The PNG to write.
        title: The figure's title.
        window_s: The rolling window of ``series``, for the legend.

    Returns:
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 7.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(title, x=0.01, ha="left", fontsize=13, fontweight="bold")
    errors, weight, drift = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1.0, 1.4]}
    )
    _error_panel(errors, series, window_s)
    _weight_panel(weight, series)
    _drift_panel(drift, series)
    shown = list(phases)
    _shade(shown, errors, (errors, weight, drift))
    _mark(markers, errors, (errors, weight, drift))
    ends = [*series.t, *(p.end for p in shown)]
    starts = [*series.t, *(p.start for p in shown)]
    if ends:
        drift.set_xlim(min(starts), max(ends))
    write_atomically(path, lambda tmp: figure.savefig(tmp, format="png"))
    return path


def _error_panel(errors: Axes, series: Series, window_s: float) -> None:
    """Wrong predictions over delayed labels per variant; 5xx over requests, dotted, if any."""
    t = series.t
    for variant in VARIANTS:
        colour = _VARIANT_COLOURS[variant]
        label = f"{variant}: wrong predictions / delayed labels ({window_s:g} s)"
        errors.plot(t, series.label_error_rate[variant], color=colour, lw=1.6, label=label)
        if any(x > 0 for x in series.server_error_rate[variant] if not math.isnan(x)):
            errors.plot(t, series.server_error_rate[variant], color=colour, lw=1.0, ls=":",
                        label=f"{variant}: 5xx errors / requests")  # fmt: skip
    errors.set_ylabel("error rate")
    errors.set_ylim(0, _top(series.label_error_rate.values()))
    errors.legend(loc="lower left", fontsize=8, framealpha=0.9)


def _weight_panel(weight: Axes, series: Series) -> None:
    """The canary weight the service applied, as a filled step."""
    t = series.t
    weight.step(t, series.canary_weight, where="post", color=_VARIANT_COLOURS[CANARY], lw=1.6)
    weight.fill_between(
        t, series.canary_weight, step="post", color=_VARIANT_COLOURS[CANARY], alpha=0.2
    )
    weight.set_ylabel("canary weight")
    weight.set_ylim(0, 1)


def _drift_panel(drift: Axes, series: Series) -> None:
    """The champion's largest feature drift score at each check."""
    drift.plot(
        series.t, series.drift_score, color=_MARKER_COLOURS["drift"], lw=1.6, marker=".", ms=3
    )
    drift.set_ylabel("drift score")
    drift.set_ylim(0, _top([series.drift_score], minimum=0.5) / 1.3)
    drift.set_xlabel("seconds since the demo started")
    drift.text(0.005, 0.95, "champion: largest feature drift score at the latest check",
               transform=drift.transAxes, fontsize=8, va="top")  # fmt: skip


def _shade(phases: Sequence[Phase], top: Axes, axes: Sequence[Axes]) -> None:
    """A band per phase through every panel, labelled in the top one."""
    for index, phase in enumerate(phases):
        # Alternate bands, so neighbouring scenarios read as separate spans.
        shade = 0.07 if index % 2 else 0.02
        for axis in axes:
            axis.axvspan(phase.start, phase.end, color="#000000", alpha=shade, lw=0)
        top.text(phase.start, 0.97, f" {phase.label}", ha="left", va="top",
                 fontsize=9, fontweight="bold", transform=top.get_xaxis_transform(),
                 bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})  # fmt: skip


def _mark(markers: Iterable[Marker], top: Axes, axes: Sequence[Axes]) -> None:
    """A vertical line per marker through every panel, labelled in the top one."""
    for marker in sorted(markers, key=lambda m: m.t):
        colour = _MARKER_COLOURS[marker.kind]
        style = "--" if marker.kind in ("canary", "note") else "-"
        for axis in axes:
            axis.axvline(marker.t, color=colour, lw=1.3, ls=style)
        top.text(marker.t, 0.88, f" {marker.label}", rotation=90, va="top", ha="left",
                 fontsize=8, color=colour, transform=top.get_xaxis_transform())  # fmt: skip


def _top(lines: Iterable[Sequence[float]], minimum: float = 0.05) -> float:
    """A y-axis top with headroom for the labels: 1.6 x the largest finite value."""
    values = [v for line in lines for v in line if not math.isnan(v)]
    return max(minimum, 1.6 * max(values, default=0.0))
