"""Shared plumbing for the local fake HTTP servers used by the test-suite.

Why: both fakes (Sofascore, Discord) need the same lifecycle (free port, daemon
thread, clean stop that also drops keep-alive connections) and the same quiet,
token-safe logging; keeping it here keeps each fake focused on behaviour.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Callable, Self

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=UTF-8"


@dataclass
class Reply:
    """What a fake wants to answer; decided under the fake's lock, written outside it."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before writing (slow/timeout modes)

    @classmethod
    def json(cls, status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
        """Build a JSON reply (compact, UTF-8, like real APIs)."""
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(status, body, JSON_TYPE, dict(headers or {}))


class _FakeHTTPServer(ThreadingHTTPServer):
    """Threaded server that remembers open connections so stop() can cut them."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 owner: BaseFake) -> None:
        self.owner = owner
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Close idle keep-alive sockets so a stopped fake really stops answering."""
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet on client disconnects; otherwise print a redacted traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        sys.stderr.write(self.owner.redact(traceback.format_exc()))


class QuietHandler(BaseHTTPRequestHandler):
    """Request handler that delegates to ``owner.handle`` and never logs request lines.

    Why silent: the Discord URL path contains the webhook token, and the default
    ``log_message`` would print it to stderr.
    """

    protocol_version = "HTTP/1.1"
    server_version = "FakeServer/1.0"
    # Written unbuffered, the reply went out as headers, then body, and with Nagle's algorithm the body waited
    # for the client's delayed ACK of the headers: ~40 ms per request that a real server does not add. Now
    # both leave in one send at the flush (a larger body in a few), on a socket with TCP_NODELAY.
    disable_nagle_algorithm = True
    wbufsize = 256 * 1024
    server: _FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        """Deliberately silent (see class docstring)."""

    def _read_body(self) -> bytes:
        """Read the request body so keep-alive connections stay in sync."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        reply = self.server.owner.handle(self.command, self.path, dict(self.headers.items()), body)
        if reply.delay > 0:
            threading.Event().wait(reply.delay)
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            if reply.status != 204:
                self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if reply.body and reply.status != 204:
                self.wfile.write(reply.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
            self.close_connection = True  # client gave up (timeouts) or fake stopped

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class BaseFake:
    """Lifecycle shared by the fakes: start on a free port, stop, context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._server: _FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- to be provided by subclasses -------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Decide the reply for one request (subclasses implement)."""
        raise NotImplementedError

    def redact(self, text: str) -> str:
        """Hook to scrub secrets from anything the server prints."""
        return text

    # -- lifecycle --------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port (only valid after start())."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self for chaining."""
        if self._server is not None:
            return self
        self._server = _FakeHTTPServer((self.host, self._requested_port), QuietHandler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve_until_signal(fake: BaseFake, banner: str, on_exit: Callable[[], None] | None = None) -> int:
    """Run a started fake in the foreground until SIGTERM/SIGINT (for ``__main__``)."""
    stop_event = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(banner, flush=True)
    while not stop_event.wait(0.2):
        pass
    fake.stop()
    if on_exit is not None:
        on_exit()
    return 0
