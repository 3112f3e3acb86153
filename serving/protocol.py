"""The HTTP protocol ``mlplat serve`` runs: uvicorn's, with a deadline on request headers.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but a connection
that is opened and then sends nothing, or sends half its headers and stops, stays open for as
long as the client likes: 400 such connections stayed open for good. This subclass gives every
connection ``header_timeout_seconds`` to deliver a request's headers, from the moment it opens
and from the first byte of each later request; then it is closed. The body has its own
deadline (:class:`serving.middleware.BodyLimitMiddleware`, 408).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.settings import get_settings


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that closes connections slow to send their headers.

    The deadline is ``MLPLAT_SERVING_HEADER_TIMEOUT_SECONDS`` (uvicorn builds the protocol, so
    it is read from the settings rather than passed in).
    """

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request's headers."""
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        """Start the clock for this request's headers (a keep-alive connection's next one)."""
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        """The headers are in: the body's deadline is the middleware's business."""
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the clock."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        seconds = get_settings().header_timeout_seconds
        self._header_timer = self.loop.call_later(seconds, self._headers_timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()
