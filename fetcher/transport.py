"""How the fetcher sends one GET to Sofascore, whichever HTTP client library does it (HTTP_CLIENT).

Every backend (fetcher/transports/) sends the same browser headers, through PROXY_URL alone, with the
same timeout and no redirects followed, and keeps its cookies in the jar it is given. Which library and
which browser profile pass Cloudflare's checks changes over time; everything above this interface stays.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.cookiejar import CookieJar
from typing import Any, Protocol

from shared.httpclients import CURL_CFFI, TLS_CLIENT, chrome_version
from shared.settings import Settings



def user_agent(chrome: int) -> str:
    """Desktop Chrome's User-Agent for a major version (Chrome reports only the major version since 101)."""
    return (f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            f"Chrome/{chrome}.0.0.0 Safari/537.36")


USER_AGENT = user_agent(146)
# What Chrome sends for an XHR made by www.sofascore.com; no Origin (same-origin GETs carry none).
BROWSER_HEADERS: dict[str, str] = {
    "User-Agent": USER_AGENT,
    "Accept": "application/json, text/plain, */*",
    "Accept-Language": "en-GB,en;q=0.9",
    "Accept-Encoding": "gzip, deflate, br",
    "Referer": "https://www.sofascore.com/",
    "X-Requested-With": "XMLHttpRequest",
    "sec-ch-ua-mobile": "?0",
    "sec-ch-ua-platform": '"Windows"',
    "sec-fetch-dest": "empty",
    "sec-fetch-mode": "cors",
    "sec-fetch-site": "same-origin",
}


def browser_headers(profile: str) -> dict[str, str]:
    """BROWSER_HEADERS with the User-Agent of the profile's Chrome version, so headers and TLS agree
    (the settings admit only desktop Chrome profiles)."""
    version = chrome_version(profile)
    return BROWSER_HEADERS if version is None else {**BROWSER_HEADERS, "User-Agent": user_agent(version)}


@dataclass(frozen=True)
class Answer:
    """An HTTP answer, whatever its status; `text` is the body decoded (gzip, br) and read as text."""

    status: int
    headers: Mapping[str, Any]  # names in any case; a value may be a list when a header came more than once
    text: str


class TransportFailure(Exception):
    """No answer at all. `reason` ("timeout", "connection error") is safe to log: never the library's message,
    which may hold the proxy's URL with its password."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Transport(Protocol):
    """One worker thread's connection to Sofascore (the native libraries keep per-session state)."""

    def get(self, url: str) -> Answer:
        """The answer, or TransportFailure when none came."""
        ...

    def close(self) -> None: ...


# Builds a thread's Transport; every one of a client's transports shares the jar it is given.
TransportFactory = Callable[[Settings, CookieJar], Transport]


class SharedCookieJar(CookieJar):
    """A cookie jar for several threads at once. CookieJar locks its reads and writes but not `clear()`, which
    curl_cffi calls to replace a cookie, while another thread may be reading the jar for its request."""

    def clear(self, domain: str | None = None, path: str | None = None, name: str | None = None) -> None:
        with self._cookies_lock:  # type: ignore[attr-defined]  # CookieJar's own (reentrant) lock
            super().clear(domain, path, name)


def backend(client: str) -> TransportFactory:
    """The transport of HTTP_CLIENT, imported only when chosen: the other library is never loaded."""
    if client == CURL_CFFI:
        from fetcher.transports.curlcffi import CurlCffiTransport

        return CurlCffiTransport
    if client == TLS_CLIENT:
        from fetcher.transports.tlsclient import TlsClientTransport

        return TlsClientTransport
    raise ValueError(f"unknown HTTP client {client!r}")  # settings validation lets none through
