"""A stand-in for the on-call integration: receives Alertmanager notifications and logs them.

Alertmanager's ``oncall`` receiver (``monitoring/alertmanager/alertmanager.yml``) posts every
alert meant for people to ``http://alert-relay:8080/notify``. A real deployment points that
receiver at chat, e-mail or a pager; in the compose stack this relay accepts the deliveries (so
Alertmanager records them as sent, not failed), prints one line per alert to its log
(``docker compose logs -f alert-relay``) and keeps the latest notifications in memory:

* ``POST /notify``        an Alertmanager webhook notification (payload version 4)
* ``GET /notifications``  the latest notifications, newest first, as JSON
* ``GET /health``         liveness

Standard library only, so it runs on any Python 3.11 image::

    python deploy/alert_relay.py --host 0.0.0.0 --port 8080
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections import deque
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 1_048_576
"""Largest notification accepted; Alertmanager's grouped notifications are far smaller."""
KEPT_NOTIFICATIONS = 200
"""Notifications kept for ``GET /notifications``."""


class Inbox:
    """The latest notifications, safe to share between request threads."""

    def __init__(self, size: int = KEPT_NOTIFICATIONS) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.received = 0

    def add(self, notification: dict[str, Any]) -> None:
        """Keep ``notification`` (the oldest is dropped when full)."""
        with self._lock:
            self._items.appendleft(notification)
            self.received += 1

    def latest(self) -> list[dict[str, Any]]:
        """The kept notifications, newest first."""
        with self._lock:
            return list(self._items)


def summarise(payload: dict[str, Any]) -> list[str]:
    """One log line per alert of a notification: status, name, severity and summary."""
    lines = []
    for alert in payload.get("alerts") or []:
        labels = alert.get("labels") or {}
        annotations = alert.get("annotations") or {}
        lines.append(
            f"[{payload.get('receiver', '?')}] {alert.get('status', '?').upper()} "
            f"{labels.get('alertname', '?')} severity={labels.get('severity', '-')} "
            f"component={labels.get('component', '-')}: {annotations.get('summary', '')}".rstrip()
        )
    return lines


def make_handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``inbox``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "mlplat-alert-relay/1"

        def _reply(self, status: HTTPStatus, body: object) -> None:
            data = json.dumps(body, indent=2).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._reply(HTTPStatus.OK, {"status": "ok", "received": inbox.received})
            elif self.path in {"/", "/notifications"}:
                self._reply(HTTPStatus.OK, inbox.latest())
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"detail": f"no route {self.path}"})

        def do_POST(self) -> None:
            if self.path != "/notify":
                self._reply(HTTPStatus.NOT_FOUND, {"detail": f"no route {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"detail": "body too large"})
                return
            try:
                payload = json.loads(self.rfile.read(length) or b"null")
            except json.JSONDecodeError as exc:
                self._reply(HTTPStatus.BAD_REQUEST, {"detail": f"body is not JSON: {exc}"})
                return
            if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
                self._reply(
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    {"detail": "not an Alertmanager notification: 'alerts' must be a list"},
                )
                return
            payload["received_at"] = datetime.now(UTC).isoformat()
            inbox.add(payload)
            for line in summarise(payload):
                print(line, flush=True)
            self._reply(HTTPStatus.OK, {"accepted": len(payload["alerts"])})

        def log_message(self, format: str, *args: Any) -> None:
            # Deliveries are logged by do_POST, one line per alert; access lines would drown them.
            return

    return Handler


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted (SIGINT or SIGTERM)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8080, help="TCP port")
    args = parser.parse_args(argv)
    # `docker compose stop` sends SIGTERM; handled like Ctrl-C so the socket closes at once.
    signal.signal(signal.SIGTERM, _interrupt)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Inbox()))
    print(f"alert relay listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
