"""The HTTP client libraries the fetcher can talk to Sofascore through (HTTP_CLIENT), and the browser profiles
each can pass for (HTTP_IMPERSONATE). Settings validation reads this; fetcher/transport.py picks the backend."""
from __future__ import annotations

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
