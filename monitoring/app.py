"""The controller's process: its loop in a thread, and a small HTTP API beside it.

``create_app(settings, controller)`` builds a FastAPI app whose lifespan starts
:meth:`~monitoring.controller.Controller.run_forever` in a background thread (a cycle blocks on
MLflow, SQL and HTTP calls; a thread keeps them off the event loop) and stops it on shutdown.

* ``POST /alertmanager/webhook`` — Alertmanager notifications (payload version 4), bearer-token
  authenticated with a constant-time compare before the body is read. A firing
  ``component="canary"`` alert makes the judge look at the live canary now, and only the judge
  decides (*continue* moves nothing); the circuit-breaker alert (``breaker="true"``) rolls the
  canary back without it (:meth:`~monitoring.controller.Controller.handle_alerts`). Resolved
  and other alerts are acknowledged and ignored. The answer lists each alert's outcome
  (``judged: continue``, ``judged: rollback``, ``circuit breaker: rolled_back``, ``ignored``…).
  401 without a bearer token, 403 with a wrong one, 413 for a body over
  ``webhook_max_body_bytes`` (1 MiB; enforced while streaming), 408 for a body not received
  within ``webhook_body_timeout_seconds``, 422 for a body that is not a notification, 503 when
  the registry cannot be reached (Alertmanager retries) or the webhook has no token configured.
* ``GET /metrics`` — :class:`~monitoring.metrics.ControllerMetrics`, for Prometheus.
* ``GET /health`` — liveness, with the last cycle's time and hold state.
* ``GET /judge`` — the judge's verdict on a champion/canary pair, for Argo Rollouts.
* ``GET /status`` — the last :class:`~monitoring.controller.CycleReport` as JSON.

The controller itself is wired elsewhere (``monitoring/wiring.py::build_controller``) and
handed in.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from interfaces.secrets import token_matches
from monitoring.controller import AlertNotice, Controller
from monitoring.settings import MonitorSettings
from registry import RegistryError

__all__ = [
    "AlertmanagerAlert",
    "AlertmanagerPayload",
    "BodyTooLarge",
    "create_app",
    "read_bounded_body",
]

logger = logging.getLogger(__name__)

_STOP_TIMEOUT_SECONDS = 30.0


class AlertmanagerAlert(BaseModel):
    """One alert of a webhook notification (Alertmanager's ``template.Alert``)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # noqa: N815 - Alertmanager's field names
    endsAt: str | None = None  # noqa: N815 - "0001-01-01T00:00:00Z" while firing
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = ""


class AlertmanagerPayload(BaseModel):
    """An Alertmanager webhook notification, payload version 4."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupKey: str = ""  # noqa: N815
    alerts: list[AlertmanagerAlert]


class BodyTooLarge(Exception):  # noqa: N818 - reads as a state
    """The request body is larger than the webhook accepts."""


async def read_bounded_body(request: Request, limit: int) -> bytes:
    """Read the request body, refusing it as soon as it exceeds ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before a byte is read; otherwise
    the limit is enforced while the body streams in, so a chunked or lying client cannot make
    the controller hold more than ``limit`` bytes.

    Raises:
        BodyTooLarge: If the body (declared or received) is over ``limit`` bytes.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the body declares {declared} bytes; the limit is {limit}")
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise BodyTooLarge(f"the body is over the limit of {limit} bytes")
    return bytes(received)


def _controller(request: Request) -> Controller | None:
    controller: Controller | None = request.app.state.controller
    return controller


def _settings(request: Request) -> MonitorSettings:
    settings: MonitorSettings = request.app.state.settings
    return settings


ControllerDep = Annotated[Controller | None, Depends(_controller)]
"""The running controller; ``None`` while the app starts."""
SettingsDep = Annotated[MonitorSettings, Depends(_settings)]

router = APIRouter()


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


def _refuse_caller(
    ctl: Controller, settings: MonitorSettings, authorization: str | None
) -> JSONResponse | None:
    """The answer to a caller the webhook does not accept, or ``None`` to go on.

    Refused: no token configured, none presented, or a wrong one (a constant-time compare);
    checked from the headers, before a byte of the body is read.
    """
    if not settings.webhook_enabled or settings.webhook_token is None:
        return _problem(
            503, "the webhook is disabled: set MLPLAT_MONITOR_WEBHOOK_TOKEN to enable it"
        )
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        ctl.metrics.record_webhook("unauthorized")
        return _problem(
            401, "missing bearer token (Authorization: Bearer <token>)",
            {"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
    if not token_matches(presented.strip(), settings.webhook_token.get_secret_value()):
        ctl.metrics.record_webhook("unauthorized")
        return _problem(403, "wrong bearer token")
    return None


@router.post("/alertmanager/webhook", summary="Receive an Alertmanager notification")
async def webhook(
    request: Request,
    ctl: ControllerDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Judge the live canary now on firing canary alerts; trip the breaker on its alert.

    In this order, so an unauthenticated or oversized request costs next to nothing: the token
    (from the headers, before a byte of the body is read), then the body, read with a size and a
    time limit, then the JSON. The controller's work runs in a worker thread (it blocks on the
    registry, Prometheus and the inference log).
    """
    if ctl is None:
        return _problem(503, "the controller is starting; retry shortly")
    refused = _refuse_caller(ctl, settings, authorization)
    if refused is not None:
        return refused
    try:
        async with asyncio.timeout(settings.webhook_body_timeout_seconds):
            body = await read_bounded_body(request, settings.webhook_max_body_bytes)
    except BodyTooLarge as exc:
        ctl.metrics.record_webhook("too_large")
        return _problem(413, f"notification too large: {exc}")
    except TimeoutError:
        ctl.metrics.record_webhook("timeout")
        return _problem(
            408,
            f"the body did not arrive within {settings.webhook_body_timeout_seconds:g} s",
        )
    try:
        payload = AlertmanagerPayload.model_validate_json(body)
    except ValidationError as exc:
        ctl.metrics.record_webhook("invalid")
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:10]
        )
        return _problem(422, f"not an Alertmanager webhook notification (version 4): {problems}")
    alerts = [
        AlertNotice(
            status=a.status,
            labels=a.labels,
            annotations=a.annotations,
            starts_at=a.startsAt,
            fingerprint=a.fingerprint,
            generator_url=a.generatorURL,
        )
        for a in payload.alerts
    ]
    try:
        outcomes = await run_in_threadpool(ctl.handle_alerts, alerts)
    except RegistryError as exc:
        # Not acknowledged: Alertmanager retries, and repeats the alert while it fires.
        logger.warning("webhook: registry unavailable, not acknowledged: %s", exc)
        return _problem(503, f"cannot act on the alerts now: {exc}")
    ctl.metrics.record_webhook("accepted")
    return JSONResponse({"outcomes": [o.to_dict() for o in outcomes]})


@router.get("/metrics", summary="Controller metrics (Prometheus text format)")
def metrics(ctl: ControllerDep) -> Response:
    """The controller's metrics."""
    if ctl is None:
        return _problem(503, "the controller is starting")
    return Response(generate_latest(ctl.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/health", summary="Liveness, with the last cycle's time and hold state")
def health(ctl: ControllerDep, settings: SettingsDep) -> dict[str, Any]:
    """Always 200 while the process runs; the body says whether cycles finish and why it holds."""
    last = None if ctl is None else ctl.last_report
    return {
        "status": "ok",
        "model_name": None if ctl is None else ctl.registry.model_name,
        "last_cycle_at": None if last is None else last.finished_at.isoformat(),
        "holding": [] if last is None else list(last.hold_reasons),
        "webhook_enabled": settings.webhook_enabled,
    }


@router.get("/judge", summary="The judge's verdict on a champion/canary pair (read-only)")
def judge(
    ctl: ControllerDep,
    champion: Annotated[int, Query(ge=1, description="The champion's model version.")],
    canary: Annotated[int, Query(ge=1, description="The canary's model version.")],
) -> Response:
    """``promote``, ``rollback``, ``inconclusive``, ``continue`` or ``unknown``, always 200.

    For Argo Rollouts' web metric provider (``deploy/kubernetes/components/argo-rollouts``):
    while the controller holds, the answer is ``continue`` with ``holding`` saying why, never
    an HTTP error; only a controller still starting answers 503.
    """
    if ctl is None:
        return _problem(503, "the controller is starting", {"Retry-After": "5"})
    return JSONResponse(ctl.verdict_for(champion, canary))


@router.get("/status", summary="The last cycle report")
def status(ctl: ControllerDep) -> Response:
    """The last :class:`~monitoring.controller.CycleReport`, or 404 before the first cycle."""
    last = None if ctl is None else ctl.last_report
    if last is None:
        return _problem(404, "no cycle has finished yet")
    return JSONResponse(last.to_dict())


def create_app(
    settings: MonitorSettings,
    controller: Controller | Callable[[], Controller],
    *,
    run_loop: bool = True,
) -> FastAPI:
    """Build the controller's app.

    Args:
        settings: Configuration (the webhook's token and limits).
        controller: The controller, or a function that builds it (called in the lifespan,
            e.g. ``monitoring/wiring.py::build_controller`` with its arguments bound).
        run_loop: Start the controller loop in the lifespan (tests drive cycles themselves).

    Returns:
        The FastAPI application.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctl = controller if isinstance(controller, Controller) else controller()
        app.state.controller = ctl
        stop = threading.Event()
        thread: threading.Thread | None = None
        if run_loop:
            thread = threading.Thread(
                target=ctl.run_forever, args=(stop,), name="mlplat-controller", daemon=True
            )
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=_STOP_TIMEOUT_SECONDS)
            app.state.controller = None
            ctl.close()

    app = FastAPI(
        title="mlplat monitoring controller",
        version="1.0.0",
        description="Judges the canary, rolls it back or promotes it, runs the drift checks; "
        "accepts Alertmanager notifications as a reason to judge the canary now.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.controller = controller if isinstance(controller, Controller) else None
    app.include_router(router)
    return app
