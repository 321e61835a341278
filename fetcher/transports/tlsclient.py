"""The `tls-client` backend: Go's HTTP stack with a browser's TLS and HTTP/2 fingerprint, through ctypes.

Its native library hangs in a process forked after it made a request, so nothing in the fetcher forks.
"""
from __future__ import annotations

from http.cookiejar import CookieJar

import tls_client
from tls_client.exceptions import TLSClientException

from fetcher.transport import Answer, TransportFailure, browser_headers
from shared.settings import Settings


class TlsClientTransport:
    """A tls_client Session. It keeps no cookies of its own: it reads the jar it is given for the Cookie header
    and extracts Set-Cookie into that same object, never replacing it."""

    def __init__(self, settings: Settings, cookies: CookieJar) -> None:
        session = tls_client.Session(client_identifier=settings.browser_profile, random_tls_extension_order=True)
        session.headers.clear()
        session.headers.update(browser_headers(settings.browser_profile))
        session.cookies = cookies  # type: ignore[assignment]  # any CookieJar does: it only uses CookieJar's methods
        if settings.proxy_url is not None:
            session.proxies = settings.proxy_url.get_secret_value()
        self._timeout = settings.http_timeout_seconds
        self._session = session

    def get(self, url: str) -> Answer:
        try:
            response = self._session.get(url, timeout=self._timeout)
        except TLSClientException as error:
            raise TransportFailure(failure_reason(error)) from None
        return Answer(response.status_code, response.headers, response.text)

    def close(self) -> None:
        self._session.close()


def failure_reason(error: TLSClientException) -> str:
    """Every failure is this one exception with Go's error text: only the text tells a timeout apart."""
    text = str(error).lower()
    if "timeout" in text or "deadline exceeded" in text:
        return "timeout"
    return "connection error"
