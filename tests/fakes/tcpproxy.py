"""A TCP proxy the tests can cut: a database (or any server) that goes away and comes back.

Why: "the database is unreachable for 5 s" must be real to the process under test — its open
connection breaks and new connections are refused — without stopping the shared test server.
`cut()` closes the listening socket and every forwarded connection (clients see a reset, then
"connection refused"); `restore()` listens again on the same port.
"""

from __future__ import annotations

import socket
import threading

from tests.fakes._listener import LoopbackListener, close, pump


class TcpProxy(LoopbackListener):
    """Forwards 127.0.0.1:<port> to `target`; `cut()` / `restore()` take it away and bring it back."""

    name = "tcpproxy"

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__()
        self.target = (target_host, target_port)
        self.connections = 0  # accepted so far (a test can see its client reconnect)

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        self.stop()

    def restore(self) -> None:
        """Listen again on the same port."""
        self.start()

    # -- forwarding -------------------------------------------------------------------------------
    def _accepted(self, listener: socket.socket, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        if not self._track(listener, client, upstream):  # cut meanwhile
            return
        self.connections += 1
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), name="tcpproxy-pump", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        pump(source, sink)
        for sock in (source, sink):
            close(sock)
        self._untrack(source, sink)
