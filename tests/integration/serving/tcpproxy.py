"""A loopback TCP proxy that a test can cut, to put a real server "down" and bring it back.

Two ways to be down, as in real outages:

* ``refuse``: the port is closed; connecting fails at once (a stopped server, a crashed pod).
* ``blackhole``: connections are accepted and bytes go nowhere; every call hangs until the
  client's own timeout (a dead host behind a load balancer, a network partition). The harder
  case: nothing ever fails fast.

Threads, not asyncio, so it runs beside any test code; loopback only.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Literal

Mode = Literal["open", "refuse", "blackhole"]


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target`` until cut.

    Args:
        target_host: Where to forward (a loopback address).
        target_port: The target's port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "open"
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepting.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def cut(self, mode: Literal["refuse", "blackhole"]) -> None:
        """Take the target "down": drop every open connection, then refuse or swallow new ones."""
        with self._lock:
            self.mode = mode
            if mode == "refuse":
                self._listener.close()
        self._drop_connections()

    def restore(self) -> None:
        """Bring the target back: forward new connections again (same port)."""
        with self._lock:
            if self.mode == "refuse":
                self._listener = self._listen(self.port)
            self.mode = "open"
        self._drop_connections()

    def close(self) -> None:
        """Stop the proxy and close everything."""
        self._stopped.set()
        with self._lock:
            self._listener.close()
        self._drop_connections()
        self._accepting.join(timeout=5)

    # --- internals -----------------------------------------------------------------------
    @staticmethod
    def _listen(port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        listener.settimeout(0.1)
        return listener

    def _drop_connections(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, upstream in pairs:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                listener, mode = self._listener, self.mode
            if mode == "refuse":
                self._stopped.wait(0.05)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            if self.mode == "blackhole":
                # Accept and never answer; keep the socket so the client waits for its timeout.
                with self._lock:
                    self._pairs.append((client, client))
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while not self._stopped.is_set():
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if self.mode == "open":
                        peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()
