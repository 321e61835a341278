"""Sofascore's JSON API through a pool of worker threads, and a verdict for every answer."""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from http.cookiejar import CookieJar
from itertools import islice
from typing import Any, Literal

from fetcher.transport import SharedCookieJar, Transport, TransportFactory, TransportFailure, backend
from shared.httpheaders import header, retry_after
from shared.settings import Settings

log = logging.getLogger(__name__)

# A bogus Retry-After must not silence the fetcher for days.
MAX_RETRY_AFTER = 6 * 3600.0

ResultKind = Literal["ok", "not_found", "challenge", "rate_limited", "error"]


@dataclass(frozen=True)
class FetchResult:
    """What one request came to. `reason` is short and safe to log: never exception text (it may hold the proxy)."""

    kind: ResultKind
    status: int | None = None
    text: str = ""
    reason: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def blocks_upstream(self) -> bool:
        """A challenge or a 429 is about us, not about one predictor: everything has to stop."""
        return self.kind in ("challenge", "rate_limited")

    def describe(self) -> str:
        """One human phrase, e.g. `challenge page (HTTP 403)`."""
        if self.kind == "challenge":
            return f"challenge page (HTTP {self.status})"
        if self.kind == "rate_limited":
            extra = f", Retry-After {self.retry_after:.0f} s" if self.retry_after is not None else ""
            return f"rate limited (HTTP {self.status}{extra})"
        if self.kind == "not_found":
            return "not found (HTTP 404)"
        return self.reason or "error"


def ranking_path() -> str:
    return "/user-account/vote-ranking"


def predictions_path(user_id: str, page: int = 0) -> str:
    return f"/user-account/{user_id}/predictions?page={page}"


def odds_path(event_id: int | str) -> str:
    return f"/event/{event_id}/odds/1/all"


def event_path(event_id: int | str) -> str:
    return f"/event/{event_id}"


def votes_path(event_id: int | str) -> str:
    return f"/event/{event_id}/votes"


# -- classification -------------------------------------------------------------------------------


def _looks_like_html(content_type: str | None, text: str) -> bool:
    if content_type and "html" in content_type.lower():
        return True
    return text.lstrip()[:1] == "<"


def classify(status: int, headers: Mapping[str, Any], text: str, *, now: float | None = None) -> FetchResult:
    """Sort an HTTP answer into ok / not_found / challenge / rate_limited / error."""
    if status == 429:
        retry = retry_after(header(headers, "Retry-After"), time.time() if now is None else now, most=MAX_RETRY_AFTER)
        return FetchResult("rate_limited", status, reason="HTTP 429", retry_after=retry)
    if status == 403 or header(headers, "cf-mitigated"):
        return FetchResult("challenge", status, reason=f"HTTP {status}")
    if status >= 500:
        # Checked before the HTML test: Cloudflare's 5xx origin-error pages are HTML but are outages, not challenges.
        return FetchResult("error", status, reason=f"HTTP {status}")
    if _looks_like_html(header(headers, "Content-Type"), text):
        return FetchResult("challenge", status, reason=f"HTML page (HTTP {status})")
    if status == 404:
        return FetchResult("not_found", status, reason="HTTP 404")
    if status != 200:
        return FetchResult("error", status, reason=f"HTTP {status}")
    try:
        json.loads(text)
    except ValueError:
        return FetchResult("error", status, reason="invalid JSON (HTTP 200)")
    return FetchResult("ok", status, text=text)


def classify_exception(error: BaseException) -> FetchResult:
    """A failed request as a safe result: only a transport's own reason is kept, never an exception's text."""
    if isinstance(error, TransportFailure):
        return FetchResult("error", None, reason=error.reason)
    return FetchResult("error", None, reason=f"request failed ({type(error).__name__})")


# -- client ---------------------------------------------------------------------------------------


class SofascoreClient:
    """At most `http_concurrency` requests in flight; each worker thread owns its Transport, all share one cookie jar.

    One Transport per thread keeps the native calls apart; the jar is shared so that a cookie Cloudflare or Sofascore
    sets on one answer (`__cf_bm`, `cf_clearance`) goes out on every later request, as in a browser tab.
    """

    def __init__(self, settings: Settings, *, transport_factory: TransportFactory | None = None) -> None:
        self._settings = settings
        self._base = settings.sofascore_base_url
        self._open_transport = transport_factory or backend(settings.http_client)
        self._local = threading.local()
        self._transports: list[Transport] = []
        self._transports_lock = threading.Lock()
        self._cookies = SharedCookieJar()
        self._pool = ThreadPoolExecutor(max_workers=settings.http_concurrency, thread_name_prefix="sofascore")
        log.info("Sofascore requests through %s, as %s", settings.http_client, settings.browser_profile)

    def _transport(self) -> Transport:
        transport = getattr(self._local, "transport", None)
        if transport is None:
            transport = self._open_transport(self._settings, self._cookies)
            self._local.transport = transport
            with self._transports_lock:
                self._transports.append(transport)
        return transport

    @property
    def cookies(self) -> CookieJar:
        """The cookie jar every worker's Transport uses."""
        return self._cookies

    def _request(self, path: str) -> FetchResult:
        """Runs in a worker thread."""
        try:
            answer = self._transport().get(self._base + path)
        except Exception as error:  # noqa: BLE001 - every failure becomes a result; its text is not kept
            return classify_exception(error)
        return classify(answer.status, answer.headers, answer.text)

    def get(self, path: str) -> FetchResult:
        """One request (through the pool, so it shares the thread-local sessions)."""
        return self._pool.submit(self._request, path).result()

    def fetch_many(self, paths: Sequence[str], halt: threading.Event) -> Iterator[tuple[int, FetchResult]]:
        """(index, result) as requests complete.

        A request not yet started once `halt` is set is skipped (not yielded); the first challenge or 429
        sets `halt` from the worker itself, so queued requests see it before the caller does.
        """

        def guarded(path: str) -> FetchResult | None:
            if halt.is_set():
                return None
            result = self._request(path)
            if result.blocks_upstream:
                halt.set()
            return result

        # Only a few requests are queued beyond those in flight: an answer waits in memory until the caller takes
        # it, so a caller slower than the requests slows them down instead of piling up thousands of payloads.
        window = 2 * self._settings.http_concurrency
        todo = iter(enumerate(paths))
        running: dict[Future[FetchResult | None], int] = {}
        while True:
            if not halt.is_set():
                for index, path in islice(todo, window - len(running)):
                    running[self._pool.submit(guarded, path)] = index
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                # Popped: a future holds its result (a whole payload) for as long as anything references it.
                index, result = running.pop(future), future.result()
                if result is not None:
                    yield index, result

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._transports_lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            try:
                transport.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    def __enter__(self) -> "SofascoreClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
