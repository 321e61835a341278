"""Logging set-up: one line per event, and configured secrets masked wherever they appear."""
from __future__ import annotations

import logging
import re
import sys
from collections import OrderedDict
from collections.abc import Hashable
from urllib.parse import urlsplit

from shared.settings import Settings

# Webhook tokens and credentials in URLs are masked even when the exact secret is not configured.
_WEBHOOK = re.compile(r"(/api/webhooks/\d+/)[\w\-.~]+")
# `scheme://user:password@`, also without a user (`redis://:password@host`, Redis's usual form).
_USERINFO = re.compile(r"([a-zA-Z][\w+.-]*://)[^/\s:@]*:[^/\s@]+@")
# libpq's `?password=`; a Sentinel URL's `?sentinel_password=` (shared/sentinelurl.py).
_PASSWORD_PARAM = re.compile(r"([?&](?:sentinel_)?password=)[^&\s]+", re.IGNORECASE)


def _secret_parts(secret: str) -> list[str]:
    """The secret and its components that could be printed on their own (token, password)."""
    parts = [secret]
    try:
        url = urlsplit(secret)
    except ValueError:
        return parts
    if url.password:
        parts.append(url.password)
    tail = url.path.rstrip("/").rsplit("/", 1)[-1]
    if "/webhooks/" in url.path and len(tail) >= 8:
        parts.append(tail)
    return parts


def first_line(error: BaseException, limit: int = 300) -> str:
    """An exception's text for one log line: its first line, or its type name when it has no text."""
    lines = str(error).strip().splitlines()
    return lines[0][:limit] if lines else type(error).__name__


def error_line(error: BaseException, limit: int = 300) -> str:
    """`Type: first line` of an exception (just the type when it has no text)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__


def safe_url(url: str) -> str:
    """A service URL to print (status, error lines): scheme, host, port and path; never the user, password or
    query (where libpq takes a password too). Free text that may hold a URL goes through `redact` instead."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        for part in _secret_parts(secret):
            text = text.replace(part, "***")
    text = _WEBHOOK.sub(r"\1***", text)
    text = _PASSWORD_PARAM.sub(r"\1***", text)
    return _USERINFO.sub(r"\1***@", text)


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            # Tracebacks are where URLs leak (requests puts them in exception text): keep one line.
            message = f"{message}: {record.exc_info[1]!r}" if record.exc_info[1] else message
            record.exc_info = None
            record.exc_text = None
        record.msg = redact(message, self._secrets)
        record.args = None
        return True


def setup_logging(settings: Settings, name: str) -> logging.Logger:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {name} %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(settings.secrets()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # Libraries log request URLs at DEBUG/INFO; those URLs carry webhook tokens.
    for noisy in ("urllib3", "rq.worker", "rq.queue"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return logging.getLogger(name)


class Once:
    """An in-process memory of what was already said, so a fault seen at every poll is logged once.

    Bounded: past `size` keys the oldest are forgotten (and would be logged again).
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: OrderedDict[Hashable, None] = OrderedDict()

    def first(self, key: Hashable) -> bool:
        """True the first time `key` is seen (the caller logs), False after."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True
