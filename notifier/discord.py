"""The Discord webhook client: one call to a webhook, and what Discord's answer means for the alerts in it.

Only Discord's own verdicts (a JSON error body) are final: 401/404, or its codes for an unknown webhook
or a wrong token, mean the webhook is broken; another Discord 4xx means it refused that message. Anything
else (5xx, timeouts, and answers not from Discord at all, such as a Cloudflare HTML page) is transient:
the delivery is tried again later.

It reads Discord's rate-limit headers (`RateLimitHeaders`, which the rate limiter learns from)
and builds the body of a call (`message`).

The webhook URL carries its token: it never appears in anything this module returns or
raises. requests' exceptions name the URL, so they are caught here and replaced by short
safe texts ("timeout", "connection error").
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from shared.httpheaders import header, retry_after
from shared.numbers import opt_float, opt_int

SENT, RATE_LIMITED, BROKEN, INVALID, TRANSIENT = "sent", "rate_limited", "broken", "invalid", "transient"
USER_AGENT = "DiscordBot (sofascore-monitor, 0.1)"
ERROR_MAX = 300
# Without any hint from Discord how long to wait after a 429.
RETRY_AFTER_UNKNOWN = 1.0
# Discord's JSON error codes that mean the webhook itself is gone or its token wrong, whatever the status.
UNKNOWN_WEBHOOK, INVALID_WEBHOOK_TOKEN = 10015, 50027
BROKEN_CODES = frozenset({UNKNOWN_WEBHOOK, INVALID_WEBHOOK_TOKEN})
# Statuses Discord answers for a deleted webhook or a wrong token.
BROKEN_STATUSES = frozenset({401, 404})
# Discord statuses that say nothing about the message itself (see classify).
NOT_ABOUT_THE_MESSAGE = frozenset({401, 403, 404, 408, 429})


@dataclass(frozen=True)
class RateLimitHeaders:
    """The rate-limit headers of one Discord response (None when absent or unparsable)."""

    limit: int | None = None
    remaining: int | None = None
    reset_after: float | None = None
    bucket: str | None = None
    scope: str | None = None
    is_global: bool = False

    @property
    def complete(self) -> bool:
        return self.limit is not None and self.remaining is not None and self.reset_after is not None


def parse_headers(headers: Mapping[str, Any]) -> RateLimitHeaders:
    """Rate-limit headers of a response, case-insensitively; junk values count as absent."""
    bucket = header(headers, "X-RateLimit-Bucket")
    scope = header(headers, "X-RateLimit-Scope")
    return RateLimitHeaders(
        limit=opt_int(header(headers, "X-RateLimit-Limit")),
        remaining=opt_int(header(headers, "X-RateLimit-Remaining")),
        reset_after=opt_float(header(headers, "X-RateLimit-Reset-After"), minimum=0),
        bucket=bucket.strip() if bucket else None,
        scope=scope.strip().lower() if scope else None,
        is_global=(header(headers, "X-RateLimit-Global") or "").strip().lower() == "true",
    )


@dataclass(frozen=True)
class PostResult:
    """Discord's answer, classified. `error` is safe to log and store (never the URL)."""

    outcome: str
    status: int | None = None
    message_id: str | None = None
    retry_after: float = 0.0
    is_global: bool = False
    scope: str | None = None
    error: str | None = None
    headers: RateLimitHeaders = field(default_factory=RateLimitHeaders)
    from_discord: bool = True  # False: the answer came from something in front of Discord (an HTML page)

    @property
    def blocked(self) -> bool:
        """A 4xx that is not Discord's verdict: something in front of Discord (Cloudflare, a proxy) refused."""
        return self.outcome == TRANSIENT and not self.from_discord and self.status is not None \
            and 400 <= self.status < 500


def with_wait(url: str) -> str:
    """The URL with `wait=true`, so Discord answers with the message (and its id)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
    query.append(("wait", "true"))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def message(embeds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The body of one webhook call: embeds only, and no mention ever pings anyone."""
    return {"embeds": list(embeds), "allowed_mentions": {"parse": []}}


def new_session() -> requests.Session:
    session = requests.Session()
    session.headers.update({"User-Agent": USER_AGENT})
    return session


def _scrub(text: str, url: str) -> str:
    """Anything Discord (or a proxy) said, without the URL or its parts, on one short line."""
    parts = urlsplit(url)
    secrets = [url, parts.path] + [p for p in parts.path.split("/") if len(p) >= 8]
    for secret in sorted(set(s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    text = re.sub(r"/api(?:/v\d+)?/webhooks/[^\s\"']+", "/api/webhooks/***", text)
    text = " ".join(text.split())
    return text[: ERROR_MAX - 1] + "…" if len(text) > ERROR_MAX else text


def _flatten_errors(errors: Any, path: str = "") -> list[str]:
    """Discord's nested `errors` object as `embeds.0.title: Must be 256 or fewer in length.`."""
    found: list[str] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            if key == "_errors" and isinstance(value, list):
                for item in value:
                    message = item.get("message") if isinstance(item, dict) else str(item)
                    found.append(f"{path or 'body'}: {message}")
            else:
                found.extend(_flatten_errors(value, f"{path}.{key}" if path else str(key)))
    return found


def describe_error(body: Any, status: int) -> str:
    """A short text of Discord's error JSON: code, message and the first field errors."""
    if not isinstance(body, dict):
        return f"HTTP {status}"
    text = f"HTTP {status}"
    if body.get("code") not in (None, 0):
        text += f" code {body.get('code')}"
    if body.get("message"):
        text += f": {body.get('message')}"
    details = _flatten_errors(body.get("errors"))
    if details:
        text += " (" + "; ".join(details[:5]) + (f"; +{len(details) - 5} more" if len(details) > 5 else "") + ")"
    return text


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _is_discords(body: Any) -> bool:
    """Discord's error JSON: an object with its `message` or `code` (what Cloudflare's pages never are)."""
    return isinstance(body, dict) and ("message" in body or "code" in body)


def _not_discords(response: requests.Response, status: int) -> str:
    """An answer that is not Discord's: its status, and what it is (an HTML page's title)."""
    kind = (header(response.headers, "Content-Type") or "").split(";")[0].strip().lower()
    text = response.text if kind.startswith("text/") else ""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    what = "HTML page" if "html" in kind else (kind or "no body")
    return f"HTTP {status}, not from Discord ({what}{': ' + title.group(1).strip() if title else ''})"


def _retry_after(body: Any, response: requests.Response, headers: RateLimitHeaders) -> float:
    """Seconds to wait after a 429: the body's `retry_after`, else the Retry-After header, else the bucket's reset."""
    seconds = opt_float(body.get("retry_after"), minimum=0) if isinstance(body, dict) else None
    if seconds is None:
        seconds = retry_after(header(response.headers, "Retry-After"), time.time())
    if seconds is None:
        seconds = headers.reset_after
    return RETRY_AFTER_UNKNOWN if seconds is None else seconds


def classify(response: requests.Response, url: str) -> PostResult:
    """Map one HTTP answer to sent / rate_limited / broken / invalid / transient."""
    status = response.status_code
    headers = parse_headers(response.headers)
    body = _json(response)
    if 200 <= status < 300:
        message_id = str(body.get("id")) if isinstance(body, dict) and body.get("id") else "unknown"
        return PostResult(SENT, status, message_id=message_id, headers=headers)
    if status == 429:
        is_global = bool(body.get("global")) if isinstance(body, dict) else False
        return PostResult(RATE_LIMITED, status, retry_after=_retry_after(body, response, headers),
                          is_global=is_global or headers.is_global,
                          scope=headers.scope or ("global" if is_global else None), error="rate limited",
                          headers=headers)
    if not _is_discords(body):
        # Cloudflare's block page, a proxy's error: says nothing about the webhook or the message.
        return PostResult(TRANSIENT, status, error=_scrub(_not_discords(response, status), url), headers=headers,
                          from_discord=False)
    error = _scrub(describe_error(body, status), url)
    if status in BROKEN_STATUSES or body.get("code") in BROKEN_CODES:
        return PostResult(BROKEN, status, error=error, headers=headers)
    if 400 <= status < 500 and status not in NOT_ABOUT_THE_MESSAGE:
        return PostResult(INVALID, status, error=error, headers=headers)
    # 5xx, 408, and a 403 of Discord's that is not about the webhook (say, missing permissions): try again.
    return PostResult(TRANSIENT, status, error=error, headers=headers)


def post(session: requests.Session, url: str, body: dict[str, Any], *, timeout: float) -> PostResult:
    """POST one message to a webhook and classify the answer; never raises for network errors."""
    error: str | None = None
    try:
        response = session.post(with_wait(url), data=json.dumps(body), timeout=timeout,
                                headers={"Content-Type": "application/json"}, allow_redirects=False)
    except requests.Timeout:
        error = "timeout"
    except requests.ConnectionError:
        error = "connection error"
    except requests.RequestException as exc:
        error = f"request error ({type(exc).__name__})"
    if error is not None:
        # Built outside the except blocks: nothing chains the original exception (and its URL).
        return PostResult(TRANSIENT, None, error=error)
    try:
        return classify(response, url)
    finally:
        response.close()
