""":func:`run_demo`: the closed loop (``mlplat demo``) end to end, on embedded defaults.

What runs, all on this machine (SQLite MLflow, local files; no Docker, no Prometheus):

* a fresh store under ``<out>/store``; the CI pipeline registers a champion;
* the inference service (``mlplat serve``) and generated traffic with delayed labels
  (``mlplat traffic``), as child processes on loopback;
* the monitoring controller (``monitoring/wiring.py::build_controller``) reading the service's own
  ``/metrics`` and its inference log, judging canaries with the real judge and moving the registry.

Then three scenarios (:mod:`demo.scenarios`): a candidate with a training-serving skew is
rolled back automatically; a good candidate is promoted; input drift on the champion raises an
alert and a retrain trigger but no rollback. Outputs under ``--out`` (default ``demo-output``):
``summary.json``, Evidently HTML reports in ``reports/``, ``timeline.png``, and ``logs/``.

The demo compresses time (short windows, a few hundred requests per second), not the rules: the
knobs are in :class:`demo.config.DemoConfig`, printed at the start. Exit status 0 only when
all three scenarios end as expected.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.table import Table

from ci.stages import RunRequest
from demo.config import DemoConfig
from demo.paths import DemoPaths
from demo.progress import DemoProgress
from demo.samples import build_series
from demo.scenarios import champion_drift, good_canary, skew_canary
from demo.summary import build_summary
from demo.timeline import Marker, MarkerKind, Phase, plot_timeline
from demo.verdicts import Narrator, ScenarioResult
from demo.world import DemoWorld
from interfaces.files import write_json_atomically
from monitoring.cli import PROJECT_LOGGERS

Scenario = Callable[[DemoWorld, Narrator], ScenarioResult]

__all__ = ["run_demo"]


logger = logging.getLogger(__name__)

TIMELINE_WINDOW_S = 8.0
"""Rolling window of the timeline's rates: long enough to smooth ~20 labels/s per variant."""

SCENARIO_TITLES = (
    ("skew-canary", "a candidate with a training-serving skew goes out as a canary", "rolled_back"),
    ("good-canary", "a candidate trained on a fresh snapshot goes out as a canary", "promoted"),
    ("champion-drift", "input drift hits the champion", "alert+retrain"),
)


@contextlib.contextmanager
def _logs_to_file(path: Path) -> Iterator[None]:
    """Send every log record and warning to ``path`` while the demo runs.

    MLflow attaches its own stderr handler at import; its lines (and warnings) would tear the
    live display, so they go to the file too, and everything is put back afterwards.
    """
    import mlflow  # noqa: F401 - its logging setup must exist before it is redirected

    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved_level = root.level
    root.addHandler(handler)
    # The platform's own records from INFO (the controller's decisions and their causes), other
    # libraries' from WARNING: httpx logs every request and Great Expectations every step at
    # INFO, which buried the decisions (the controller's own --log-level does the same).
    root.setLevel(logging.WARNING)
    ours = [logging.getLogger(name) for name in (*PROJECT_LOGGERS, "demo")]
    saved_ours = [lg.level for lg in ours]
    for lg in ours:
        lg.setLevel(logging.INFO)
    quiet = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    saved = [(lg.handlers[:], lg.propagate) for lg in quiet]
    for lg in quiet:
        lg.handlers = []
        lg.propagate = True
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        for lg, (handlers, propagate) in zip(quiet, saved, strict=True):
            lg.handlers, lg.propagate = handlers, propagate
        for lg, level in zip(ours, saved_ours, strict=True):
            lg.setLevel(level)
        root.removeHandler(handler)
        root.setLevel(saved_level)
        handler.close()


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP end the demo like Ctrl-C: cleanly, children stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def _prewarm_evidently() -> None:
    """Import Evidently in the background: the first report would otherwise wait seconds for it."""

    def load() -> None:
        with contextlib.suppress(Exception):
            from evidently import Report  # noqa: F401
            from evidently.metrics import ValueDrift  # noqa: F401

    threading.Thread(target=load, name="mlplat-demo-prewarm", daemon=True).start()


def _knobs_table(config: DemoConfig) -> Table:
    table = Table(
        title="demo settings: time is compressed, the rules are not", title_justify="left"
    )
    table.add_column("knob")
    table.add_column("demo")
    table.add_column("production default")
    for knob, value, default in config.knobs():
        table.add_row(knob, value, default)
    return table


def run_demo(config: DemoConfig, out: Path, console: Console) -> dict[str, Any]:
    """Run the whole demo and write its outputs under ``out``; return the summary.

    Raises:
        KeyboardInterrupt: Re-raised after everything was stopped and the summary written.
        FileExistsError: ``out`` holds files the demo did not write.
    """
    paths = DemoPaths(out)
    paths.prepare()
    started = time.monotonic()
    results = [
        ScenarioResult(key, title, expected=expected) for key, title, expected in SCENARIO_TITLES
    ]
    error: str | None = None
    interrupted = False
    setup: dict[str, Any] = {}
    deployment: dict[str, Any] = {}
    events: list[str] = []
    console.print(_knobs_table(config))
    world = DemoWorld(config, paths)
    with _logs_to_file(paths.logs / "demo.log"), _terminate_as_interrupt():
        try:
            with world, DemoProgress(console, lambda: world.stats, started) as progress:
                try:
                    _run(world, progress, results, setup, skew_canary, good_canary, champion_drift)
                except Exception as exc:  # reported as a message; the traceback goes to the log
                    error = f"{type(exc).__name__}: {exc}"
                    logger.exception("demo stopped")
                    progress.say(f"[red]demo stopped: {error}[/]")
                except KeyboardInterrupt:
                    interrupted, error = True, "interrupted"
                    progress.say(
                        "[yellow]interrupted: stopping the service, traffic and controller[/]"
                    )
                finally:
                    deployment, events = _final_state(world)
        except KeyboardInterrupt:
            # A second Ctrl-C while stopping: the world's cleanup still ran (the with statement).
            interrupted, error = True, "interrupted"
        seconds = time.monotonic() - started
        files = _write_timeline(world, results, paths)
        payload = build_summary(
            results, seconds=seconds, config=config.model_dump(), setup=setup,
            deployment=deployment, events=events, files=files, error=error,
        )  # fmt: skip
        write_json_atomically(paths.summary, payload)
    if interrupted:
        raise KeyboardInterrupt
    return payload


def _run(
    world: DemoWorld,
    progress: DemoProgress,
    results: list[ScenarioResult],
    setup: dict[str, Any],
    *scenarios: Scenario,
) -> None:
    config = world.config
    progress.phase("setup: a fresh store, the inference service and a first champion")
    progress.step("creating the MLflow store and the event log")
    world.open_store()
    world.start_serving()
    _prewarm_evidently()
    progress.say(f"  store {world.paths.store}; service {world.serving_url} starting")
    summary = world.trainer.run(
        RunRequest(seed=config.champion_seed, reason="demo: the first champion"),
        on_stage=lambda stage, status, detail: progress.step(
            f"pipeline: {stage} {status} {detail}"
        ),
    )
    if summary.outcome != "registered":
        raise RuntimeError(f"the first champion was not registered: {summary.reasons}")
    progress.say(
        f"  pipeline: v{summary.model_version} registered as {summary.alias} "
        f"(holdout AUC {summary.metrics.get('auc', float('nan')):.3f})"
    )
    progress.step("waiting for the service to load the champion")
    ready = world.wait_until_serving()
    progress.say(f"  service ready with champion v{summary.model_version}")
    world.start_controller()
    world.start_sampler()
    world.start_traffic()
    progress.say(
        f"  traffic: {config.traffic_rate:g} req/s, labels {config.label_delay_s:g} s later "
        f"for {config.label_fraction:.0%}; controller every {config.controller_interval_s:g} s"
    )
    setup.update(
        {
            "champion": {"model_version": summary.model_version, "mlflow_run": summary.run_id,
                         "holdout_metrics": {k: round(v, 4) for k, v in summary.metrics.items()}},
            "serving_url": world.serving_url,
            "service_ready_after_s": round(ready, 1),
            "tracking_uri": world.registry_settings.tracking_uri,
        }
    )  # fmt: skip
    for index, (run, result) in enumerate(zip(scenarios, results, strict=True), start=1):
        progress.phase(f"scenario {index}/3: {result.title} (expected: {result.expected})")
        results[index - 1] = done = run(world, progress)
        took = "" if done.seconds_to_verdict is None else f" after {done.seconds_to_verdict:.1f} s"
        progress.verdict(f"scenario {index}: {done.outcome}{took}")


def _final_state(world: DemoWorld) -> tuple[dict[str, Any], list[str]]:
    registry = getattr(world, "registry", None)
    if registry is None:
        return {}, []
    try:
        state = registry.state()
        history = registry.history(limit=200)
    except Exception as exc:  # the summary must still be written
        logger.warning("final state unreadable: %s", exc)
        return {}, []
    deployment = {"champion": state.champion, "challenger": state.challenger,
                  "canary_weight": state.canary_weight}  # fmt: skip
    return deployment, [event.describe() for event in reversed(history)]


def _write_timeline(
    world: DemoWorld, results: list[ScenarioResult], paths: DemoPaths
) -> dict[str, Any]:
    files: dict[str, Any] = {
        "summary": str(paths.summary),
        "reports": sorted(str(p) for p in paths.reports.glob("*.html")),
        "store": str(paths.store),
        "logs": str(paths.logs),
        "timeline": None,
    }
    samples = world.samples()
    if len(samples) < 2:
        return files
    first = next((r.started_at for r in results if r.started_at is not None), None)
    phases = [] if first is None else [Phase(0.0, first, "setup")]
    markers: list[Marker] = []
    for number, result in enumerate(results, start=1):
        if result.started_at is not None and result.ended_at is not None:
            phases.append(Phase(result.started_at, result.ended_at, f"{number}: {result.key}"))
        if result.canary_at is not None:
            what = "drifted traffic" if result.key == "champion-drift" else "canary starts"
            markers.append(Marker(result.canary_at, what, "canary"))
        if result.verdict_at is not None:
            markers.append(_verdict_marker(result))
    try:
        series = build_series(samples, window_s=TIMELINE_WINDOW_S)
        plot_timeline(series, markers, phases, paths.timeline, window_s=TIMELINE_WINDOW_S)
        files["timeline"] = str(paths.timeline)
    except Exception as exc:  # the summary matters more than the picture
        logger.exception("timeline not drawn")
        files["timeline_error"] = f"{type(exc).__name__}: {exc}"
    return files


def _verdict_marker(result: ScenarioResult) -> Marker:
    kinds: dict[str, MarkerKind] = {"rolled_back": "rollback", "promoted": "promote",
                                    "paused": "pause", "alert+retrain": "drift"}  # fmt: skip
    version = (result.evidence.get("pipeline") or {}).get("model_version")
    who = f"v{version} " if version is not None else ""
    what = result.outcome.replace("_", " ").replace("alert+retrain", "alert + retrain")
    seconds = result.seconds_to_verdict
    took = "" if seconds is None else f" ({seconds:.1f} s)"
    assert result.verdict_at is not None
    return Marker(result.verdict_at, f"{who}{what}{took}", kinds.get(result.outcome, "note"))
