"""`sofamon test-webhook`: post one harmless message to each configured webhook and say what Discord answered.

The answer is classified as the notifier classifies it (notifier/discord.py), so "BROKEN" here means what
it means for delivery. Webhooks are named (`main`, `health`) with the fingerprint of their URL, never the
URL: it carries the token. The message pings nobody. Exit status 0 when every webhook tried accepted it.
"""
from __future__ import annotations

import socket
import sys
import time
from typing import Any, TextIO

from notifier.discord import BROKEN, INVALID, RATE_LIMITED, SENT, PostResult, message, new_session, post
from notifier.webhooks import fingerprint
from shared import console
from shared.settings import Settings
from shared.timefmt import local_stamp
from shared.webhooks import HEALTH_WEBHOOK, MAIN_WEBHOOK, WEBHOOKS, setting_name, webhook_url

# What an unset webhook means for the notifier.
UNSET = {MAIN_WEBHOOK: "alerts are printed to the notifier's log instead (dry run)",
         HEALTH_WEBHOOK: "health alerts are printed to the notifier's log instead"}


def test_message(webhook: str, now: float) -> dict[str, Any]:
    return message([{
        "title": "sofamon test message",
        "description": (f"Sent by `sofamon test-webhook` on {socket.gethostname()} at {local_stamp(now)} to check"
                        f" the '{webhook}' webhook. Nothing to do."),
        "color": 0x95A5A6,
    }])


def meaning(result: PostResult, webhook: str) -> str:
    """Discord's answer in words, with what to do about it."""
    if result.outcome == SENT:
        return f"ok: Discord accepted the test message (HTTP {result.status}, message id {result.message_id})"
    if result.outcome == RATE_LIMITED:
        scope = " globally" if result.is_global else ""
        return (f"RATE LIMITED{scope} (HTTP 429): Discord asks to wait {result.retry_after:.1f} s;"
                " try again after that")
    if result.outcome == BROKEN:
        return (f"BROKEN ({result.error}): the webhook was deleted or its token is wrong;"
                f" set a working URL in {setting_name(webhook)}")
    if result.outcome == INVALID:
        return f"REFUSED ({result.error}): Discord refused the message itself"
    return (f"FAILED ({result.error}): Discord or the network is in trouble; the notifier retries such"
            " failures, try again later")


def run(settings: Settings, only: str | None = None, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    session = new_session()
    rows, ok = [], True
    try:
        for webhook in (only,) if only else WEBHOOKS:
            url = webhook_url(settings, webhook)
            if url is None:
                rows.append([webhook, f"not set ({setting_name(webhook)}): {UNSET[webhook]}"])
                ok = ok and webhook == HEALTH_WEBHOOK and only is None  # only the health webhook is optional
                continue
            result = post(session, url, test_message(webhook, time.time()), timeout=settings.notifier_http_timeout)
            rows.append([webhook, f"{meaning(result, webhook)}  [URL fingerprint {fingerprint(url)}]"])
            ok = ok and result.outcome == SENT
    finally:
        session.close()
    console.show("\n".join(console.table(rows)), out)
    return 0 if ok else 1
