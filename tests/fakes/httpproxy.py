"""A forward HTTP proxy the tests can look into: did the client go through the proxy, with its credentials?

Why: PROXY_URL must reach whichever HTTP client the fetcher uses. The proxy speaks both ways clients use a
proxy: `CONNECT host:port` (a tunnel, what HTTPS requests take) and a request with an absolute URL (plain
HTTP). It records each request line and its `Proxy-Authorization`, and forwards to loopback addresses only.
"""

from __future__ import annotations

import socket
import threading
from typing import NamedTuple
from urllib.parse import urlsplit

from tests.fakes._listener import LoopbackListener, close, pump

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024


class ProxiedRequest(NamedTuple):
    method: str
    target: str  # `host:port` for CONNECT, else the absolute URL
    authorization: str | None  # the Proxy-Authorization header as sent


class HttpProxy(LoopbackListener):
    """Listens on 127.0.0.1:<port>; `requests` lists what went through it, in order."""

    name = "httpproxy"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ProxiedRequest] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    # -- serving ----------------------------------------------------------------------------------
    def _accepted(self, listener: socket.socket, client: socket.socket) -> None:
        self._track(None, client)
        threading.Thread(target=self._serve, args=(client,), name="httpproxy-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            head, rest = _read_head(client)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers = [line for line in lines[1:] if line]
            authorization = next((line.split(":", 1)[1].strip() for line in headers
                                  if line.lower().startswith("proxy-authorization:")), None)
            with self._lock:
                self.requests.append(ProxiedRequest(method, target, authorization))
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = self._connect(client, host, int(port))
                if upstream is not None:
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    upstream.sendall(rest)
                    self._pipe(client, upstream)
                return
            url = urlsplit(target)
            upstream = self._connect(client, url.hostname or "", url.port or 80)
            if upstream is None:
                return
            # One request per connection: the client opens a new one (and is recorded again) for the next.
            kept = [line for line in headers if not line.lower().startswith(("proxy-", "connection:"))]
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            upstream.sendall(("\r\n".join([f"{method} {path} {version}", *kept, "Connection: close"]) + "\r\n\r\n")
                             .encode("latin-1") + rest)
            self._pipe(client, upstream)
        except (OSError, ValueError):
            pass
        finally:
            self._untrack(client)
            close(client)

    def _connect(self, client: socket.socket, host: str, port: int) -> socket.socket | None:
        if host not in ("127.0.0.1", "localhost"):  # the tests' traffic stays on this machine
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return None
        try:
            upstream = socket.create_connection((host, port), timeout=5)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return None
        upstream.settimeout(None)
        self._track(None, upstream)
        return upstream

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        """Both directions until either side closes."""
        back = threading.Thread(target=pump, args=(upstream, client), name="httpproxy-pump", daemon=True)
        back.start()
        pump(client, upstream)
        back.join(5)
        self._untrack(upstream)


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while _HEAD_END not in data:
        chunk = sock.recv(65536)
        if not chunk or len(data) > _MAX_HEAD:
            return None, b""
        data += chunk
    head, _, rest = data.partition(_HEAD_END)
    return head, rest
