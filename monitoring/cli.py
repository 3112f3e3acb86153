"""``mlplat monitor``: run the controller, or one cycle of it.

Without ``--once`` it serves the controller's app (webhook, ``/metrics``, ``/health``,
``/status``) and runs a cycle every ``--interval`` seconds until stopped. With ``--once`` it
runs one cycle and prints the :class:`~monitoring.controller.CycleReport` as JSON (exit 0, or
3 when the controller held: a CI step can tell "judged" from "could not judge").

The command is built by :func:`monitor_command` around the pipeline's drift rule, which the
composition root hands in (``mlplat/monitor.py``): ``monitoring`` does not import ``ci``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Final

import click

if TYPE_CHECKING:
    from monitoring.controller.retrain import DriftRule
    from monitoring.settings import MonitorSettings

__all__ = ["EXIT_HELD", "configure_logging", "monitor_command"]

EXIT_HELD = 3

PROJECT_LOGGERS: Final = (
    "monitoring",
    "registry",
    "serving",
    "pipeline",
    "ci",
    "features",
    "mlplat",
)
"""The packages whose loggers ``--log-level`` sets: the controller's decisions and their causes."""

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Log the project's own records from ``level``, other libraries' from WARNING.

    The controller polls every few seconds, and httpx logs each request at INFO: one line per
    Prometheus query or scrape, which buried the decisions. Libraries therefore stay at WARNING
    (their problems still show), unless ``level`` is ``debug``, which shows everything. uvicorn
    sets its own loggers from the same ``--log-level`` when the server starts.

    Args:
        level: ``critical``, ``error``, ``warning``, ``info`` or ``debug``.
    """
    wanted = logging.getLevelNamesMapping()[level.upper()]
    libraries = logging.DEBUG if wanted == logging.DEBUG else max(wanted, logging.WARNING)
    logging.basicConfig(level=libraries, format=LOG_FORMAT)
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(wanted)


def _settings(overrides: dict[str, object]) -> MonitorSettings:
    # Imported when the command runs, not when it is listed: the settings load the judge's and
    # the drift checks' configs (pandas, scipy), and ``mlplat monitor --help`` answers at once.
    from pydantic import ValidationError

    from monitoring.settings import MonitorSettings, get_settings

    try:
        # Flags override the environment and pass the same validation.
        return MonitorSettings(**overrides) if overrides else get_settings()  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise click.ClickException(f"invalid monitor settings: {problems}") from None


_OPTIONS: Final = (
    click.option("--once", is_flag=True, help="Run one cycle, print its report as JSON, and exit."),
    click.option(
        "--interval",
        type=click.FloatRange(min=0.1, max=3600),
        default=None,
        help="Seconds between cycles [default: MLPLAT_MONITOR_INTERVAL_SECONDS or 15].",
    ),
    click.option(
        "--host", default=None, help="Interface of the webhook server [default: 127.0.0.1]."
    ),
    click.option(
        "--port", type=click.IntRange(1, 65535), default=None, help="Its port [default: 9200]."
    ),
    click.option(
        "--prometheus-url",
        default=None,
        help="Read canary metrics from this Prometheus (http://host:9090) instead of scraping.",
    ),
    click.option(
        "--scrape",
        "scrape_urls",
        multiple=True,
        help="Scrape this /metrics URL of the inference service (repeatable; no Prometheus "
        "needed).",
    ),
    click.option(
        "--log-level",
        default="info",
        show_default=True,
        type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    ),
)


def monitor_command(retrain_rule: DriftRule) -> click.Command:
    """The ``monitor`` command, its retrain trigger applying ``retrain_rule``.

    Args:
        retrain_rule: The pipeline's drift rule (``ci/triggers.py::drift``).
    """

    def monitor(
        once: bool,
        interval: float | None,
        host: str | None,
        port: int | None,
        prometheus_url: str | None,
        scrape_urls: tuple[str, ...],
        log_level: str,
    ) -> None:
        """Judge the live canary, roll it back or promote it, and run the drift checks.

        Settings: MLPLAT_MONITOR_* (see .env.example), the registry's MLFLOW_TRACKING_URI and
        MLPLAT_* variables.
        """
        configure_logging(log_level)
        if prometheus_url and scrape_urls:
            raise click.UsageError("give --prometheus-url or --scrape, not both")
        overrides: dict[str, object] = {}
        if interval is not None:
            overrides["interval_seconds"] = interval
        if host is not None:
            overrides["host"] = host
        if port is not None:
            overrides["port"] = port
        if prometheus_url:
            overrides["prometheus_url"] = prometheus_url
        if scrape_urls:
            overrides["serving_metrics_urls"] = scrape_urls
            overrides["prometheus_url"] = None
        _run(_settings(overrides), retrain_rule, once=once, log_level=log_level)

    for option in reversed(_OPTIONS):
        monitor = option(monitor)
    return click.command("monitor")(monitor)


def _run(settings: MonitorSettings, retrain_rule: DriftRule, *, once: bool, log_level: str) -> None:
    """Build the controller, then run one cycle or serve it until stopped."""
    # Imported when the command runs (see _settings): the controller loads the registry and
    # MLflow, uvicorn the web server.
    import uvicorn

    from monitoring.app import create_app
    from monitoring.settings import MonitorSettingsError
    from monitoring.wiring import build_controller
    from registry import RegistryError

    try:
        controller = build_controller(settings, retrain_rule=retrain_rule)
    except (RegistryError, MonitorSettingsError) as exc:
        raise click.ClickException(str(exc)) from None
    if once:
        try:
            report = controller.run_once()
        finally:
            controller.close()
        click.echo(json.dumps(report.to_dict(), indent=2))
        if report.held:
            raise SystemExit(EXIT_HELD)
        return
    uvicorn.run(
        create_app(settings, controller),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
