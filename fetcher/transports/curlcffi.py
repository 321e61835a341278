"""The `curl_cffi` backend: curl-impersonate (libcurl built with a browser's TLS library and settings).

The peer that moved off tls-client after 403s moved here; HTTP_CLIENT=curl_cffi switches to it.
"""
from __future__ import annotations

from http.cookiejar import CookieJar

from curl_cffi import CurlError, CurlOpt
from curl_cffi.requests import Session
from curl_cffi.requests.exceptions import Timeout

from fetcher.transport import Answer, TransportFailure, browser_headers
from shared.settings import Settings


class CurlCffiTransport:
    """A curl_cffi Session. curl's own cookie engine is emptied and refilled from the session's jar for every
    request, and what the answer sets goes back into it, so the jar given here is the only cookie store."""

    def __init__(self, settings: Settings, cookies: CookieJar) -> None:
        proxy = settings.proxy_url.get_secret_value() if settings.proxy_url is not None else None
        # PROXY_URL alone decides, as with tls-client: libcurl would otherwise take `http_proxy`, `ALL_PROXY`
        # and `NO_PROXY` from the environment.
        options = {CurlOpt.NOPROXY: ""} if proxy else {CurlOpt.PROXY: ""}
        headers = browser_headers(settings.browser_profile)
        self._session = Session(
            impersonate=settings.browser_profile,  # type: ignore[arg-type]  # checked by the settings
            # Exactly the browser headers: the profile's own defaults are a page load's (Upgrade-Insecure-Requests,
            # sec-fetch-mode: navigate), wrong for the XHR these requests stand for.
            default_headers=False,
            headers=headers,
            proxy=proxy,
            timeout=settings.http_timeout_seconds,
            allow_redirects=False,  # as tls-client: a redirect is an answer to classify, not to follow
            curl_options=options,
        )
        self._session.cookies = cookies  # wrapped, not copied: every thread's session shares the jar
        self._accept_encoding = headers["Accept-Encoding"]

    def get(self, url: str) -> Answer:
        try:
            # accept_encoding makes curl decode what it asks for; the header sent is ours.
            response = self._session.get(url, accept_encoding=self._accept_encoding)
        except CurlError as error:
            raise TransportFailure(failure_reason(error)) from None
        return Answer(response.status_code, response.headers, response.text)

    def close(self) -> None:
        self._session.close()


def failure_reason(error: CurlError) -> str:
    """curl_cffi raises an exception class per kind of failure (ConnectTimeout is a Timeout too)."""
    return "timeout" if isinstance(error, Timeout) else "connection error"
