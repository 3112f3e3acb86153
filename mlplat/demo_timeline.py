"""The demo's timeline: per-second samples of the service and the controller, and their plot.

A :class:`Sample` holds *cumulative* counters read from the inference service's own ``/metrics``
(rows scored, server errors and delayed labels per variant, the canary weight it serves) and the
controller's latest drift score. :func:`build_series` turns consecutive samples into rates over
a short rolling window; :func:`plot_timeline` draws them with the verdicts marked and writes a
PNG. Parsing and the arithmetic are pure functions, so they are tested without a server;
plotting uses matplotlib's object API on the Agg canvas (no pyplot state, no display needed).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from prometheus_client.parser import text_string_to_metric_families

from interfaces.files import write_atomically
from interfaces.metric_names import (
    CANARY_WEIGHT_RATIO,
    ERRORS_TOTAL,
    LABELED_PREDICTIONS_TOTAL,
    PREDICTIONS_TOTAL,
)
from interfaces.routing import CANARY, CHAMPION, VARIANTS
from monitoring.sources import SERVER_ERROR_CLASSES

__all__ = [
    "Marker",
    "MarkerKind",
    "Phase",
    "Sample",
    "Series",
    "build_series",
    "parse_service_metrics",
    "plot_timeline",
]

WRONG_OUTCOMES: Final = ("fp", "fn")

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
class Sample:
    """Cumulative counters at one moment.

    Attributes:
        t: Seconds since the demo started.
        predictions: Rows scored per variant, all model versions summed.
        server_errors: Failed requests per variant that were the service's fault.
        labels: Delayed labels joined per variant.
        label_errors: Of those, the wrong predictions (false positives and negatives).
        canary_weight: The canary weight the service applies now.
        drift_score: The champion's largest feature drift score at the latest check, if any.
    """

    t: float
    predictions: Mapping[str, float] = field(default_factory=dict)
    server_errors: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, float] = field(default_factory=dict)
    label_errors: Mapping[str, float] = field(default_factory=dict)
    canary_weight: float = 0.0
    drift_score: float | None = None


def parse_service_metrics(text: str, t: float, drift_score: float | None = None) -> Sample:
    """Read one scrape of the service's ``/metrics`` into a :class:`Sample`.

    Args:
        text: Prometheus text exposition.
        t: Seconds since the demo started.
        drift_score: The controller's latest drift score, passed through.

    Raises:
        ValueError: If ``text`` is not Prometheus text.
    """
    predictions: dict[str, float] = {}
    errors: dict[str, float] = {}
    labels: dict[str, float] = {}
    wrong: dict[str, float] = {}
    weight = 0.0

    def add(into: dict[str, float], variant: str, value: float) -> None:
        into[variant] = into.get(variant, 0.0) + value

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            variant = sample.labels.get("variant", "")
            if sample.name == CANARY_WEIGHT_RATIO:
                weight = float(sample.value)
            elif variant not in VARIANTS:
                continue
            elif sample.name == PREDICTIONS_TOTAL:
                add(predictions, variant, sample.value)
            elif sample.name == ERRORS_TOTAL:
                if sample.labels.get("error_class") in SERVER_ERROR_CLASSES:
                    add(errors, variant, sample.value)
            elif sample.name == LABELED_PREDICTIONS_TOTAL:
                add(labels, variant, sample.value)
                if sample.labels.get("outcome") in WRONG_OUTCOMES:
                    add(wrong, variant, sample.value)
    return Sample(t, predictions, errors, labels, wrong, weight, drift_score)


@dataclass(frozen=True)
class Series:
    """Rates over a rolling window, one value per sample (``nan`` where undefined).

    Attributes:
        t: Seconds since the demo started.
        request_rate: Rows scored per second, per variant.
        server_error_rate: Server errors over requests, per variant.
        label_error_rate: Wrong predictions over delayed labels, per variant.
        canary_weight: The weight the service applied.
        drift_score: The champion's largest feature drift score.
    """

    t: tuple[float, ...]
    request_rate: Mapping[str, tuple[float, ...]]
    server_error_rate: Mapping[str, tuple[float, ...]]
    label_error_rate: Mapping[str, tuple[float, ...]]
    canary_weight: tuple[float, ...]
    drift_score: tuple[float, ...]


def _ratio(numerator: float, denominator: float, minimum: float) -> float:
    return numerator / denominator if denominator >= minimum and denominator > 0 else math.nan


def build_series(
    samples: Sequence[Sample], window_s: float = 5.0, min_labels: float = 20.0
) -> Series:
    """Rates over the last ``window_s`` seconds at each sample.

    Counters that drop (a restarted service) restart the window instead of going negative.

    Args:
        samples: Samples in time order.
        window_s: Length of the rolling window.
        min_labels: Fewer labels in a window leave its label error rate undefined (``nan``).

    Raises:
        ValueError: If ``window_s`` is not positive or the samples are out of order.
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
    if any(b.t < a.t for a, b in itertools.pairwise(samples)):
        raise ValueError("samples must be in time order")
    rate: dict[str, list[float]] = {v: [] for v in VARIANTS}
    server: dict[str, list[float]] = {v: [] for v in VARIANTS}
    labelled: dict[str, list[float]] = {v: [] for v in VARIANTS}
    reset = base_index = 0
    for i, now in enumerate(samples):
        if i and _dropped(samples[i - 1], now):
            reset = i
        # The window's left edge: the newest sample at least window_s old (since any reset).
        base_index = max(base_index, reset)
        while base_index + 1 < i and samples[base_index + 1].t <= now.t - window_s:
            base_index += 1
        base = samples[base_index]
        span = now.t - base.t
        for v in VARIANTS:
            done = _delta(now.predictions, base.predictions, v)
            failed = _delta(now.server_errors, base.server_errors, v)
            rate[v].append(done / span if span > 0 else math.nan)
            server[v].append(_ratio(failed, done + failed, 1.0))
            wrong = _delta(now.label_errors, base.label_errors, v)
            labelled[v].append(_ratio(wrong, _delta(now.labels, base.labels, v), min_labels))
    return Series(
        t=tuple(s.t for s in samples),
        request_rate={v: tuple(x) for v, x in rate.items()},
        server_error_rate={v: tuple(x) for v, x in server.items()},
        label_error_rate={v: tuple(x) for v, x in labelled.items()},
        canary_weight=tuple(s.canary_weight for s in samples),
        drift_score=tuple(math.nan if s.drift_score is None else s.drift_score for s in samples),
    )


def _delta(now: Mapping[str, float], base: Mapping[str, float], variant: str) -> float:
    return max(0.0, now.get(variant, 0.0) - base.get(variant, 0.0))


def _dropped(before: Sample, after: Sample) -> bool:
    return any(after.predictions.get(v, 0.0) < before.predictions.get(v, 0.0) for v in VARIANTS)


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

    weight.step(t, series.canary_weight, where="post", color=_VARIANT_COLOURS[CANARY], lw=1.6)
    weight.fill_between(
        t, series.canary_weight, step="post", color=_VARIANT_COLOURS[CANARY], alpha=0.2
    )
    weight.set_ylabel("canary weight")
    weight.set_ylim(0, 1)

    drift.plot(t, series.drift_score, color=_MARKER_COLOURS["drift"], lw=1.6, marker=".", ms=3)
    drift.set_ylabel("drift score")
    drift.set_ylim(0, _top([series.drift_score], minimum=0.5) / 1.3)
    drift.set_xlabel("seconds since the demo started")
    drift.text(0.005, 0.95, "champion: largest feature drift score at the latest check",
               transform=drift.transAxes, fontsize=8, va="top")  # fmt: skip

    shown = list(phases)
    for index, phase in enumerate(shown):
        # Alternate bands, so neighbouring scenarios read as separate spans.
        shade = 0.07 if index % 2 else 0.02
        for axis in (errors, weight, drift):
            axis.axvspan(phase.start, phase.end, color="#000000", alpha=shade, lw=0)
        errors.text(phase.start, 0.97, f" {phase.label}", ha="left", va="top",
                    fontsize=9, fontweight="bold", transform=errors.get_xaxis_transform(),
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})  # fmt: skip
    for marker in sorted(markers, key=lambda m: m.t):
        colour = _MARKER_COLOURS[marker.kind]
        style = "--" if marker.kind in ("canary", "note") else "-"
        for axis in (errors, weight, drift):
            axis.axvline(marker.t, color=colour, lw=1.3, ls=style)
        errors.text(marker.t, 0.88, f" {marker.label}", rotation=90, va="top", ha="left",
                    fontsize=8, color=colour, transform=errors.get_xaxis_transform())  # fmt: skip
    ends = [*t, *(p.end for p in shown)]
    starts = [*t, *(p.start for p in shown)]
    if ends:
        drift.set_xlim(min(starts), max(ends))
    write_atomically(path, lambda tmp: figure.savefig(tmp, format="png"))
    return path


def _top(lines: Iterable[Sequence[float]], minimum: float = 0.05) -> float:
    """A y-axis top with headroom for the labels: 1.6 x the largest finite value."""
    values = [v for line in lines for v in line if not math.isnan(v)]
    return max(minimum, 1.6 * max(values, default=0.0))
