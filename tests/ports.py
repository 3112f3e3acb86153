"""Loopback ports for the servers tests start: the one place tests pick a port.

Binding port 0 and letting the server report its port would be race-free, but none of the servers
here can do that usefully: ``python -m serving`` and ``python -m monitoring`` accept ports 1-65535
only, and Prometheus, Alertmanager and the controller must each know the others' ports before any
of them starts. So the port is chosen first and handed to the server.

Closing a probe socket and passing its number on races with everything else on the machine that
asks the kernel for a port (another test's probe, any outgoing connection's source port): the
kernel may hand the same number out again before the server binds it. :func:`free_port` closes
that gap the way ``ephemeral-port-reserve`` does: it leaves the port in ``TIME_WAIT``, so for the
next 60 s (Linux) the kernel gives it to no one who asks for "any port", while a server that
binds it by number with ``SO_REUSEADDR`` (uvicorn, Go's ``net.Listen`` in Prometheus, Alertmanager
and Grafana, gunicorn) still can.

The race that remains: a process that binds this exact number on purpose within those 60 s, or a
server started more than 60 s later. Start the server right after taking its port.
"""

from __future__ import annotations

import socket

__all__ = ["free_port"]

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on and the kernel will not hand out.

    Also serves as a "closed port" (connecting is refused at once) for tests of a server
    that is down.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        address = listener.getsockname()
        # Connect and close the accepted side first: the side that closes first keeps the
        # connection in TIME_WAIT, and it is the side bound to our port.
        with socket.create_connection(address) as _client:
            accepted, _ = listener.accept()
            accepted.close()
        port: int = address[1]
        return port
