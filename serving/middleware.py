"""A pure ASGI middleware: request body size and time limits, and arrival time.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: it runs on every request, and the
latter costs an extra task and memory stream per request, which shows at thousands of req/s.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ARRIVED_AT = "mlplat.arrived_at"
"""Scope key with ``time.perf_counter()`` at the request's arrival (latency starts there)."""


async def _reject(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Answers 413 to bodies over ``max_bytes`` and 408 to bodies slower than ``timeout_seconds``.

    A declared ``Content-Length`` is checked up front. The body is then read here, chunk by
    chunk, counting bytes (a chunked body has no declared length) and against a deadline that
    starts at the request's arrival, and replayed to the application. So no oversized body is
    ever buffered, and a client that stops sending mid-body holds a connection for
    ``timeout_seconds`` at most, not forever.

    Args:
        app: The wrapped application.
        max_bytes: Largest body accepted.
        timeout_seconds: Longest time from arrival to the end of the body.
        on_reject: Called with the request path when a body is refused (metrics).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout_seconds: float = 10.0,
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[ARRIVED_AT] = time.perf_counter()
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400, "Content-Length must be a whole number of bytes")
                    return
                break
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, send)
            return
        if declared == 0 or (
            declared is None and scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE")
        ):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        try:
            async with asyncio.timeout_at(_loop_deadline(self.timeout_seconds)):
                while True:
                    message = await receive()
                    messages.append(message)
                    if message["type"] != "http.request":
                        break
                    size += len(message.get("body", b""))
                    if size > self.max_bytes:
                        await self._too_large(scope, send)
                        return
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _reject(
                send,
                408,
                f"the request body did not arrive within {self.timeout_seconds:g} s; "
                "send the whole body promptly",
            )
            return
        await self.app(scope, _replay(messages, receive), send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        if self.on_reject is not None:
            self.on_reject(str(scope.get("path", "")))
        await _reject(send, 413, f"request body is larger than the limit of {self.max_bytes} bytes")


def _loop_deadline(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
