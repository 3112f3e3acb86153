"""Command line: ``mlplat serve`` / ``python -m serving``.

``serve`` validates the settings before anything starts (a placeholder admin token outside dev
mode is refused here, with the reason, rather than in each worker), pins BLAS/OpenMP threads, and
with ``--workers N`` puts prometheus-client in multi-process mode so that every scrape of
``/metrics`` shows the totals of all workers. In that mode the supervising process starts from an
empty metrics directory and drops the live gauges of any worker that dies
(:func:`serving.multiprocess.mark_dead_workers`), so a replaced worker's values stop counting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import TYPE_CHECKING

import click

# The project's modules, pydantic and uvicorn are imported inside the commands, so that
# `mlplat serve --help` answers at once instead of loading the service first.
if TYPE_CHECKING:
    from serving.settings import ServingSettings


def _settings_or_exit() -> ServingSettings:
    """Validate the settings and return them."""
    from pydantic import ValidationError

    from serving.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise click.ClickException(f"invalid serving settings: {problems}") from None
    return settings


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes; metrics are aggregated across them.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="Log every request (the inference log already records every prediction).",
)
def serve(host: str, port: int, workers: int, log_level: str, access_log: bool) -> None:
    """Run the inference service (settings: MLPLAT_SERVING_* and MLFLOW_TRACKING_URI)."""
    settings = _settings_or_exit()
    threads = settings.model_threads
    # Before any worker imports numpy/scikit-learn: their thread pools size themselves at load.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, str(threads))
    import uvicorn

    from serving.multiprocess import (
        MULTIPROC_ENV,
        multiprocess_dir,
        prepare_multiprocess_dir,
        sweeping_dead_workers,
    )

    with contextlib.ExitStack() as cleanup:
        given = multiprocess_dir()
        # One worker given a directory reads it in multi-process mode too: start it empty as well.
        if workers > 1 or given is not None:
            path, made = prepare_multiprocess_dir(given)
            if made:
                cleanup.callback(shutil.rmtree, path, ignore_errors=True)
            # prometheus-client takes its folder from this variable only (the library's
            # contract), read in each worker as it creates its metrics; uvicorn's workers
            # inherit this process's environment, so this is how the folder is passed to them.
            os.environ[MULTIPROC_ENV] = str(path)
            if workers > 1:
                cleanup.enter_context(sweeping_dead_workers(path))
        uvicorn.run(
            "serving.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=10,
            # Slow or stalled clients: idle keep-alive connections close after this; headers
            # and bodies have their own deadlines (serving/protocol.py, serving/middleware.py).
            timeout_keep_alive=settings.keep_alive_seconds,
            http="serving.protocol:HeaderDeadlineProtocol",
            # Headers larger than this are refused by the parser (h11; httptools caps at 80 KB).
            h11_max_incomplete_event_size=64 * 1024,
        )
