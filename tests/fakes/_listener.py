"""What the proxy fakes share: a listening socket on 127.0.0.1 with an accept thread, the connections it
tracks, and a stop that refuses new connections and breaks the open ones (clients see a reset)."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Self


class LoopbackListener:
    """Subclasses say what to do with each accepted connection (`_accepted`, on the accept thread)."""

    name = "listener"

    def __init__(self) -> None:
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> Self:
        """Listen on `port` (any free one at first; the same one again after a stop)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name=f"{self.name}-accept", daemon=True).start()
        return self

    def stop(self) -> None:
        """Refuse new connections and break the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = list(self._conns), set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            close(conn)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            self._accepted(listener, client)

    def _accepted(self, listener: socket.socket, client: socket.socket) -> None:
        raise NotImplementedError

    def _track(self, listener: socket.socket | None, *socks: socket.socket) -> bool:
        """Keep these connections to break at a stop; False (and closed) if `listener` stopped meanwhile."""
        with self._lock:
            if listener is not None and self._listener is not listener:
                for sock in socks:
                    sock.close()
                return False
            self._conns.update(socks)
            return True

    def _untrack(self, *socks: socket.socket) -> None:
        with self._lock:
            self._conns.difference_update(socks)


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction until either side closes, then shut both down."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
