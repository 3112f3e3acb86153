"""Typed FastAPI dependencies: settings, the runtime, and the admin guard.

Two performance rules, both measured on ``POST /predict``:

* Dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool,
  one thread hop per request for what is an attribute read.
* The app's settings are read from ``app.state`` (put there by ``create_app(settings)``), not
  swapped in with ``app.dependency_overrides``: while *any* override is registered, FastAPI
  re-inspects the signature of every dependency of every request, which cost about a third of
  the service's throughput. Tests still override :func:`get_app_settings` or
  :func:`get_runtime` as usual.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from interfaces.secrets import token_matches
from serving.runtime import ServingRuntime
from serving.settings import ServingSettings


async def get_app_settings(request: Request) -> ServingSettings:
    """Return the settings the app was created with (``create_app(settings)``)."""
    settings: ServingSettings = request.app.state.settings
    return settings


SettingsDep = Annotated[ServingSettings, Depends(get_app_settings)]


async def get_runtime(request: Request) -> ServingRuntime:
    """Return the process runtime started by the lifespan.

    Raises:
        HTTPException: 503 when the lifespan has not started it (or has stopped it).
    """
    runtime = getattr(request.app.state, "runtime", None)
    if not isinstance(runtime, ServingRuntime):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the service is starting up")
    return runtime


RuntimeDep = Annotated[ServingRuntime, Depends(get_runtime)]

_bearer = HTTPBearer(auto_error=False, description="MLPLAT_SERVING_ADMIN_TOKEN")


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Allow the request only with ``Authorization: Bearer <admin token>``.

    Raises:
        HTTPException: 401 without a bearer token, 403 with a wrong one.
    """
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "admin endpoints need an 'Authorization: Bearer <token>' header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not token_matches(credentials.credentials, settings.admin_token.get_secret_value()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the admin token is not valid")


AdminDep = Depends(require_admin)
