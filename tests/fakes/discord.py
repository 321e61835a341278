"""Local fake of Discord's "Execute Webhook" endpoint.

Why: the notifier must be tested against Discord's real contract — embed limits
(400/50035), bad webhooks (401/404), per-webhook rate-limit buckets announced in
``X-RateLimit-*`` headers, and the *unannounced* per-channel limit (~30 msgs/min,
429 with ``X-RateLimit-Scope: shared``) — without any network access.

Order of checks for ``POST /api/webhooks/{id}/{token}[?wait=true]``:
edge block (edge_block_next: Cloudflare's HTML page, before Discord sees anything) ->
unknown id (404) -> broken webhook (set_broken) -> wrong token (401) -> body
(400, consumes nothing) -> bucket exhausted (429 user) -> *consume one bucket slot*
-> injected failure (fail_next) -> channel limit (429 shared) -> accept.

Run standalone: ``python -m tests.fakes.discord --port 0 --bucket-limit 5``;
prints the default webhook URL, and a JSON summary on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Any, Callable, Final
from urllib.parse import parse_qs, urlsplit

from tests.fakes._http import HTML_TYPE, BaseFake, Reply, serve_until_signal

DEFAULT_WEBHOOK_ID: Final[str] = "111"
DEFAULT_WEBHOOK_TOKEN: Final[str] = "tok-SECRET-abc"
DISCORD_EPOCH_MS: Final[int] = 1420070400000
CHANNEL_WINDOW: Final[float] = 60.0

# Documented Discord limits (characters).
CONTENT_MAX, EMBEDS_MAX, USERNAME_MAX = 2000, 10, 80
TITLE_MAX, DESCRIPTION_MAX, FIELDS_MAX = 256, 4096, 25
FIELD_NAME_MAX, FIELD_VALUE_MAX, FOOTER_MAX, AUTHOR_MAX = 256, 1024, 2048, 256
EMBED_TOTAL_MAX: Final[int] = 6000

UNKNOWN_WEBHOOK: Final[dict[str, Any]] = {"message": "Unknown Webhook", "code": 10015}
INVALID_TOKEN: Final[dict[str, Any]] = {"message": "Invalid Webhook Token", "code": 50027}
BAD_REQUEST: Final[dict[str, Any]] = {"message": "400: Bad Request", "code": 0}

# What Cloudflare (in front of discord.com) answers when it blocks a client: an HTML page, no Discord JSON.
CLOUDFLARE_BLOCK_HTML: Final[str] = """<!DOCTYPE html>
<html class="no-js" lang="en-US"><head><title>Attention Required! | Cloudflare</title>
<meta charset="UTF-8" /></head><body><div id="cf-wrapper"><h1>Sorry, you have been blocked</h1>
<h2>You are unable to access discord.com</h2><p>Cloudflare Ray ID: 8a1b2c3d4e5f6a7b</p></div></body></html>
"""

_WEBHOOK_RE = re.compile(r"/api(?:/v\d+)?/webhooks/([^/]+)/([^/]+)/?")


# -- validation (pure functions) ------------------------------------------------
Errors = dict[str, Any]


def _error(code: str, message: str) -> dict[str, Any]:
    return {"_errors": [{"code": code, "message": message}]}


def _put(errors: Errors, path: tuple[str | int, ...], err: dict[str, Any]) -> None:
    """Nest an error like Discord does: {"embeds": {"0": {"title": {"_errors": [...]}}}}."""
    node = errors
    for key in path[:-1]:
        node = node.setdefault(str(key), {})
    node[str(path[-1])] = err


def _check_str(errors: Errors, path: tuple[str | int, ...], value: Any, limit: int,
               required: bool = False) -> int:
    """Validate one string field; returns its length for the 6000-char total."""
    if value is None:
        if required:
            _put(errors, path, _error("BASE_TYPE_REQUIRED", "This field is required"))
        return 0
    if not isinstance(value, str):
        _put(errors, path, _error("STRING_TYPE_CONVERT", f"Could not interpret \"{value}\" as string."))
        return 0
    if required and not value.strip():
        _put(errors, path, _error("BASE_TYPE_REQUIRED", "This field is required"))
    elif len(value) > limit:
        _put(errors, path, _error("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."))
    return len(value)


def _sub(obj: Any, key: str) -> Any:
    """``obj[key]`` when obj is a dict (footer/author may be missing or junk)."""
    return obj.get(key) if isinstance(obj, dict) else None


def _check_fields(errors: Errors, base: tuple[str | int, ...], fields_: Any) -> int:
    if fields_ is None:
        return 0
    if not isinstance(fields_, list):
        _put(errors, base + ("fields",), _error("LIST_TYPE_CONVERT", "Must be an array."))
        return 0
    if len(fields_) > FIELDS_MAX:
        _put(errors, base + ("fields",),
             _error("BASE_TYPE_MAX_LENGTH", f"Must be {FIELDS_MAX} or fewer in length."))
    total = 0
    for i, fld in enumerate(fields_):
        total += _check_str(errors, base + ("fields", i, "name"), _sub(fld, "name"),
                            FIELD_NAME_MAX, required=True)
        total += _check_str(errors, base + ("fields", i, "value"), _sub(fld, "value"),
                            FIELD_VALUE_MAX, required=True)
    return total


def _check_embed(errors: Errors, index: int, embed: Any) -> int:
    """Validate one embed; returns its counted characters."""
    base: tuple[str | int, ...] = ("embeds", index)
    if not isinstance(embed, dict):
        _put(errors, base, _error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"))
        return 0
    return (_check_str(errors, base + ("title",), embed.get("title"), TITLE_MAX)
            + _check_str(errors, base + ("description",), embed.get("description"), DESCRIPTION_MAX)
            + _check_str(errors, base + ("footer", "text"), _sub(embed.get("footer"), "text"), FOOTER_MAX)
            + _check_str(errors, base + ("author", "name"), _sub(embed.get("author"), "name"), AUTHOR_MAX)
            + _check_fields(errors, base, embed.get("fields")))


def _check_embeds(errors: Errors, embeds: Any) -> None:
    if embeds is None:
        return
    if not isinstance(embeds, list):
        _put(errors, ("embeds",), _error("LIST_TYPE_CONVERT", "Must be an array."))
        return
    if len(embeds) > EMBEDS_MAX:
        _put(errors, ("embeds",), _error("BASE_TYPE_MAX_LENGTH", f"Must be {EMBEDS_MAX} or fewer in length."))
        return
    total = sum(_check_embed(errors, i, e) for i, e in enumerate(embeds))
    if total > EMBED_TOTAL_MAX and "embeds" not in errors:
        _put(errors, ("embeds",), _error("MAX_EMBED_SIZE_EXCEEDED",
                                         f"Embed size exceeds maximum size of {EMBED_TOTAL_MAX}"))


def validate_message(payload: Any) -> Errors:
    """Return Discord-style nested ``errors`` for an execute-webhook body ({} if valid).

    Note: real Discord answers an empty message with code 50006; this fake reports it
    as 50035 with errors on ``content``/``embeds`` (per the project brief).
    """
    errors: Errors = {}
    if not isinstance(payload, dict):
        return _error("DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    _check_str(errors, ("content",), payload.get("content"), CONTENT_MAX)
    _check_str(errors, ("username",), payload.get("username"), USERNAME_MAX)
    _check_embeds(errors, payload.get("embeds"))
    content, embeds = payload.get("content"), payload.get("embeds")
    has_content = isinstance(content, str) and content.strip() != ""
    if not errors and not has_content and not embeds:
        empty = _error("BASE_TYPE_REQUIRED", "Cannot send an empty message: content or embeds required")
        errors = {"content": empty, "embeds": empty}
    return errors


def embed_chars(embed: dict[str, Any]) -> int:
    """Characters Discord counts toward the 6000 limit for one embed (for test authors)."""
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len(_sub(embed.get("footer"), "text") or "") + len(_sub(embed.get("author"), "name") or "")
    for fld in embed.get("fields") or []:
        total += len(fld.get("name") or "") + len(fld.get("value") or "")
    return total


# -- state -----------------------------------------------------------------------
@dataclass
class _Webhook:
    id: str
    token: str
    channel_id: str
    bucket_hash: str
    broken: int | None = None
    window_start: float | None = None
    used: int = 0


@dataclass
class _Injection:
    status: int
    remaining: int
    delay: float = 0.0
    retry_after: float = 1.0


@dataclass
class _Counters:
    count_429: int = 0
    count_400: int = 0
    count_401_403_404: int = 0
    responses: list[int] = field(default_factory=list)


def _status_body(status: int, retry_after: float) -> dict[str, Any]:
    """JSON body Discord would send with an injected status."""
    if status == 401:
        return INVALID_TOKEN
    if status == 404:
        return UNKNOWN_WEBHOOK
    if status == 429:
        return {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return {"message": f"{status}: {phrase}", "code": 0}


class FakeDiscord(BaseFake):
    """Threaded fake Discord webhook endpoint with rate limits and fault injection.

    Each webhook gets its own channel unless ``add_webhook(..., channel_id=...)``
    puts several in one channel (they then share the hidden per-channel limit).
    ``clock`` drives rate limiting and ``accepted[i]["time"]``; header ``X-RateLimit-Reset``
    is always wall-clock (time.time) based.
    """

    def __init__(self, webhooks: dict[str, str] | None = None, bucket_limit: int = 5,
                 bucket_window: float = 2.0, channel_per_minute: int | None = 30,
                 clock: Callable[[], float] = time.monotonic, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(host, port)
        self.bucket_limit = bucket_limit
        self.bucket_window = bucket_window
        self.channel_per_minute = channel_per_minute
        self.clock = clock
        self.lock = threading.RLock()
        self.accepted: list[dict[str, Any]] = []
        self._stats = _Counters()
        self._hooks: dict[str, _Webhook] = {}
        self._channel_hits: dict[str, deque[float]] = {}
        self._injections: deque[_Injection] = deque()
        self._edge_blocks: deque[int] = deque()  # statuses of the next requests Cloudflare blocks
        self._last_snowflake = 0
        for hook_id, token in (webhooks or {DEFAULT_WEBHOOK_ID: DEFAULT_WEBHOOK_TOKEN}).items():
            self.add_webhook(hook_id, token)

    # -- configuration ---------------------------------------------------------
    def add_webhook(self, webhook_id: str, token: str, channel_id: str | None = None) -> None:
        """Register a webhook (own channel by default)."""
        digest = hashlib.sha1(f"webhook-bucket:{webhook_id}".encode()).hexdigest()[:32]
        with self.lock:
            self._hooks[str(webhook_id)] = _Webhook(
                str(webhook_id), token, channel_id or f"9{int(digest[:12], 16) % 10**17:017d}", digest)

    def url(self, webhook_id: str = DEFAULT_WEBHOOK_ID) -> str:
        """Execute-webhook URL of a registered webhook (contains its token)."""
        hook = self._hooks[str(webhook_id)]
        return f"{self.root_url}/api/webhooks/{hook.id}/{hook.token}"

    def set_broken(self, webhook_id: str, status: int | None) -> None:
        """Permanently answer 401 (token revoked) or 404 (deleted); None heals it."""
        with self.lock:
            self._hooks[str(webhook_id)].broken = status

    def fail_next(self, n: int, status: int = 500, retry_after: float = 1.0) -> None:
        """Next ``n`` valid requests get ``status`` (JSON body; 429 uses ``retry_after``)."""
        with self.lock:
            self._injections.append(_Injection(status, n, retry_after=retry_after))

    def edge_block_next(self, n: int, status: int = 403) -> None:
        """Next ``n`` requests (any webhook, valid or not) get Cloudflare's HTML block page with ``status``:
        Discord never sees them, so no bucket slot is used and no rate-limit headers come back."""
        with self.lock:
            self._edge_blocks.extend([status] * n)

    def timeout_next(self, n: int, delay: float = 5.0) -> None:
        """Next ``n`` valid requests are accepted *and recorded* at once, but answered after
        ``delay`` s. Why recorded: Discord posts the message even if the client times out,
        which is exactly the duplicate-on-retry window notifier tests must cover."""
        with self.lock:
            self._injections.append(_Injection(200, n, delay=delay))

    def redact(self, text: str) -> str:
        """Scrub every registered token from anything the server prints."""
        for hook in list(self._hooks.values()):
            text = text.replace(hook.token, "***")
        return text

    # -- observation -----------------------------------------------------------
    @property
    def responses(self) -> list[int]:
        return self._stats.responses

    @property
    def count_429(self) -> int:
        return self._stats.count_429

    @property
    def count_400(self) -> int:
        return self._stats.count_400

    @property
    def count_401_403_404(self) -> int:
        return self._stats.count_401_403_404

    def accepted_embeds(self) -> list[dict[str, Any]]:
        """All embeds of accepted messages, in acceptance order."""
        with self.lock:
            return [e for msg in self.accepted for e in (msg["payload"].get("embeds") or [])]

    def summary(self) -> dict[str, int]:
        """Counts printed by ``__main__`` at exit."""
        with self.lock:
            return {"accepted_messages": len(self.accepted),
                    "accepted_embeds": len(self.accepted_embeds()),
                    "429": self.count_429, "400": self.count_400,
                    "401_403_404": self.count_401_403_404}

    # -- request handling ------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Decide under the lock, record the status; any delay is slept outside the lock."""
        with self.lock:
            reply = self._decide(method, target, body)
            self._count(reply.status)
        return reply

    def _count(self, status: int) -> None:
        self._stats.responses.append(status)
        if status == 429:
            self._stats.count_429 += 1
        elif status == 400:
            self._stats.count_400 += 1
        elif status in (401, 403, 404):
            self._stats.count_401_403_404 += 1

    def _decide(self, method: str, target: str, body: bytes) -> Reply:
        if self._edge_blocks:
            status = self._edge_blocks.popleft()
            return Reply(status, CLOUDFLARE_BLOCK_HTML.encode("utf-8"), HTML_TYPE,
                         {"Server": "cloudflare", "CF-RAY": "8a1b2c3d4e5f6a7b-FRA"})
        parts = urlsplit(target)
        m = _WEBHOOK_RE.fullmatch(parts.path)
        hook = self._hooks.get(m[1]) if m else None
        if m is None or hook is None:
            return Reply.json(404, UNKNOWN_WEBHOOK)
        if hook.broken is not None:
            return Reply.json(hook.broken, _status_body(hook.broken, 1.0))
        if m[2] != hook.token:
            return Reply.json(401, INVALID_TOKEN)
        now = self.clock()
        if method != "POST":
            return Reply.json(405, {"message": "405: Method Not Allowed", "code": 0},
                              self._rl_headers(hook, now))
        return self._execute(hook, now, body, _wants_wait(parts.query))

    def _execute(self, hook: _Webhook, now: float, body: bytes, wait: bool) -> Reply:
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return Reply.json(400, BAD_REQUEST, self._rl_headers(hook, now))
        errors = validate_message(payload)
        if errors:
            return Reply.json(400, {"message": "Invalid Form Body", "code": 50035, "errors": errors},
                              self._rl_headers(hook, now))
        if self._bucket_used(hook, now) >= self.bucket_limit:
            return self._rate_limited(hook, now, self._reset_after(hook, now), "user")
        self._consume(hook, now)
        injection = self._take_injection()
        if injection is not None and injection.status != 200:
            return self._injected(hook, now, injection)
        channel_wait = self._channel_wait(hook, now)
        if channel_wait > 0:
            reply = self._rate_limited(hook, now, channel_wait, "shared")
        else:
            reply = self._accept(hook, now, payload, wait)
        reply.delay = injection.delay if injection is not None else 0.0
        return reply

    # -- buckets -----------------------------------------------------------------
    def _window_open(self, hook: _Webhook, now: float) -> bool:
        return hook.window_start is not None and now < hook.window_start + self.bucket_window

    def _bucket_used(self, hook: _Webhook, now: float) -> int:
        return hook.used if self._window_open(hook, now) else 0

    def _reset_after(self, hook: _Webhook, now: float) -> float:
        if not self._window_open(hook, now):
            return self.bucket_window
        assert hook.window_start is not None
        return max(0.0, hook.window_start + self.bucket_window - now)

    def _consume(self, hook: _Webhook, now: float) -> None:
        """Fixed window that starts at the first request after the previous one expired."""
        if not self._window_open(hook, now):
            hook.window_start, hook.used = now, 0
        hook.used += 1

    def _rl_headers(self, hook: _Webhook, now: float) -> dict[str, str]:
        reset_after = self._reset_after(hook, now)
        return {"X-RateLimit-Limit": str(self.bucket_limit),
                "X-RateLimit-Remaining": str(max(0, self.bucket_limit - self._bucket_used(hook, now))),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": hook.bucket_hash}

    def _channel_wait(self, hook: _Webhook, now: float) -> float:
        """Seconds until the hidden per-channel limit frees a slot (0 = free now)."""
        if self.channel_per_minute is None:
            return 0.0
        hits = self._channel_hits.setdefault(hook.channel_id, deque())
        while hits and hits[0] <= now - CHANNEL_WINDOW:
            hits.popleft()
        if len(hits) < self.channel_per_minute:
            return 0.0
        return max(0.001, hits[0] + CHANNEL_WINDOW - now)

    def _rate_limited(self, hook: _Webhook, now: float, retry_after: float, scope: str) -> Reply:
        body: dict[str, Any] = {"message": "You are being rate limited.",
                                "retry_after": round(retry_after, 3), "global": False}
        if scope == "shared":
            body["code"] = 20028  # "write action ... has hit the write rate limit" (channel)
        headers = self._rl_headers(hook, now)
        headers.update({"Retry-After": str(max(1, math.ceil(retry_after))), "X-RateLimit-Scope": scope})
        return Reply.json(429, body, headers)

    # -- injections & acceptance -----------------------------------------------------
    def _take_injection(self) -> _Injection | None:
        if not self._injections:
            return None
        head = self._injections[0]
        head.remaining -= 1
        if head.remaining <= 0:
            self._injections.popleft()
        return head

    def _injected(self, hook: _Webhook, now: float, inj: _Injection) -> Reply:
        if inj.status == 429:
            return self._rate_limited(hook, now, inj.retry_after, "user")
        return Reply.json(inj.status, _status_body(inj.status, inj.retry_after),
                          self._rl_headers(hook, now))

    def _accept(self, hook: _Webhook, now: float, payload: dict[str, Any], wait: bool) -> Reply:
        message_id = self._next_snowflake()
        if self.channel_per_minute is not None:
            self._channel_hits.setdefault(hook.channel_id, deque()).append(now)
        self.accepted.append({"webhook_id": hook.id, "channel_id": hook.channel_id,
                              "payload": payload, "message_id": message_id, "time": now})
        headers = self._rl_headers(hook, now)
        if not wait:
            return Reply(204, b"", None, headers)
        return Reply.json(200, _message_object(hook, payload, message_id), headers)

    def _next_snowflake(self) -> str:
        """Unique, increasing snowflake: (ms since Discord epoch << 22) | worker | seq."""
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        self._last_snowflake = max((ms << 22) | (1 << 17), self._last_snowflake + 1)
        return str(self._last_snowflake)


def _wants_wait(query: str) -> bool:
    return parse_qs(query).get("wait", ["false"])[-1].lower() in ("true", "1")


def _message_object(hook: _Webhook, payload: dict[str, Any], message_id: str) -> dict[str, Any]:
    """Subset of Discord's message object returned with ``?wait=true``."""
    return {"id": message_id, "type": 0, "channel_id": hook.channel_id,
            "content": payload.get("content") or "",
            "embeds": [{"type": "rich", **e} for e in payload.get("embeds") or []],
            "author": {"id": hook.id, "username": payload.get("username") or "Fake Webhook",
                       "avatar": None, "discriminator": "0000", "bot": True},
            "attachments": [], "mentions": [], "mention_roles": [], "mention_everyone": False,
            "pinned": False, "tts": bool(payload.get("tts", False)), "flags": payload.get("flags", 0),
            "timestamp": datetime.now(timezone.utc).isoformat(), "edited_timestamp": None,
            "components": [], "webhook_id": hook.id}


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, printing the default webhook URL, then a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bucket-limit", type=int, default=5)
    parser.add_argument("--bucket-window", type=float, default=2.0)
    parser.add_argument("--channel-per-minute", type=int, default=30, help="0 disables")
    args = parser.parse_args(argv)
    fake = FakeDiscord(bucket_limit=args.bucket_limit, bucket_window=args.bucket_window,
                       channel_per_minute=args.channel_per_minute or None,
                       host=args.host, port=args.port).start()
    return serve_until_signal(fake, fake.url(), lambda: print(json.dumps(fake.summary()), flush=True))


if __name__ == "__main__":
    raise SystemExit(main())
