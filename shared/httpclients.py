"""The HTTP client libraries the fetcher can talk to Sofascore through (HTTP_CLIENT), and the browser profiles
each can pass for (HTTP_IMPERSONATE). Settings validation reads this; fetcher/transport.py picks the backend."""
from __future__ import annotations

import re

TLS_CLIENT = "tls-client"
CURL_CFFI = "curl_cffi"
HTTP_CLIENTS = (TLS_CLIENT, CURL_CFFI)

# Each library's name for the browser fetcher/transport.py's BROWSER_HEADERS describe (Chrome 146 on Windows):
# a TLS fingerprint of another browser under Chrome's User-Agent would be a mismatch Cloudflare can see.
DEFAULT_PROFILE: dict[str, str] = {TLS_CLIENT: "chrome_146", CURL_CFFI: "chrome146"}


def profiles(client: str) -> frozenset[str]:
    """The profile names `client`'s library knows, read from the library (an upgrade brings its new browsers).

    Only the chosen client's library is imported: every process validates its settings, and curl_cffi's list
    loads its native library (3 MB). tls_client's list is plain Python (its native library loads on first use).
    """
    if client == CURL_CFFI:
        from curl_cffi.requests.impersonate import BrowserType

        return frozenset(browser.value for browser in BrowserType)
    from tls_client.settings import CLIENT_IDENTIFIERS

    return frozenset(CLIENT_IDENTIFIERS)


# Desktop Chrome profiles of both libraries: `chrome_146`, `chrome146`, `chrome_116_PSK_PQ`.
_DESKTOP_CHROME = re.compile(r"chrome_?(\d+)[a-z]?(?:_psk)?(?:_pq)?", re.IGNORECASE)


def chrome_version(profile: str) -> int | None:
    """The Chrome major version a desktop Chrome profile passes for; None for any other browser or device.

    The fetcher's User-Agent carries this version, so the TLS fingerprint and the headers tell the same story.
    """
    match = _DESKTOP_CHROME.fullmatch(profile)
    return int(match.group(1)) if match else None
