"""Health alerts from the notifier: outbox rows for the "health" webhook, throttled per topic.

Each topic can raise one alert per throttle period (Redis `SET NX EX`), shared by every
notifier process, so a failing webhook or a restart loop never floods the health channel.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Literal

from notifier.context import NotifierContext
from shared import healththrottle, outbox
from shared.alerts import HealthAlert
from shared.jobs import describe, enqueue_alert
from shared.webhooks import HEALTH_WEBHOOK

log = logging.getLogger(__name__)

STARTED = "notifier-started"
STOPPED = "notifier-stopped"


def broken_topic(webhook: str) -> str:
    return f"webhook-broken:{webhook}"


def failing_topic(webhook: str) -> str:
    return f"delivery-failing:{webhook}"


def blocked_topic(webhook: str) -> str:
    return f"webhook-blocked:{webhook}"


def emit(ctx: NotifierContext, topic: str, title: str, message: str,
         level: Literal["info", "warning", "error"] = "warning", *, throttle_seconds: int | None = None) -> int | None:
    """Insert and enqueue a health alert unless the topic raised one recently; its id or None."""
    seconds = ctx.config.health_throttle_seconds if throttle_seconds is None else throttle_seconds
    # Each call is a new alert: a holder of its own, so only a free period lets it through.
    if not healththrottle.take(ctx.redis, ctx.keys, topic, seconds, holder=f"{ctx.owner}|{uuid.uuid4().hex}"):
        log.debug("health alert %s throttled", topic)
        return None
    alert = HealthAlert(title=title, message=message, level=level)
    with ctx.db.tx() as tx:
        alert_id = outbox.insert(tx, alert, webhook=HEALTH_WEBHOOK, created_at=time.time())
    enqueue_alert(ctx.queue, alert_id, retry_intervals=ctx.config.retry_intervals, description=describe(alert),
                  drain=ctx.keys.drain(HEALTH_WEBHOOK))
    log.info("health alert %s: %s (alert %s)", topic, title, alert_id)
    return alert_id


def notifier_started(ctx: NotifierContext) -> int | None:
    return emit(ctx, STARTED, "Notifier started", f"Notifier {ctx.owner} started delivering alerts.", "info")


def notifier_stopped(ctx: NotifierContext) -> int | None:
    return emit(ctx, STOPPED, "Notifier stopped", f"Notifier {ctx.owner} stopped.", "warning")


def webhook_broken(ctx: NotifierContext, webhook: str, status: int | None, fingerprint: str) -> int | None:
    return emit(
        ctx, broken_topic(webhook), f"Discord webhook '{webhook}' is broken",
        f"Discord answered {status} for the '{webhook}' webhook (URL fingerprint {fingerprint}): it was deleted"
        " or its token is wrong. Its alerts stay pending; set a working URL and restart the notifier"
        " to deliver them.",
        "error",
    )


def webhook_blocked(ctx: NotifierContext, webhook: str, error: str, after: str) -> int | None:
    """An answer refusing the request that is not Discord's (a Cloudflare page): said at once, not after the
    last retry, since it may last (a blocked address); the webhook is not marked broken."""
    return emit(
        ctx, blocked_topic(webhook), f"Discord webhook '{webhook}' refused by something in front of Discord",
        f"A delivery to the '{webhook}' webhook got an answer that is not Discord's ({error}): Cloudflare or a"
        f" proxy between this machine and Discord refused it. The webhook is not marked broken; delivery is"
        f" tried again ({after}).",
        "warning",
    )


def delivery_failing(ctx: NotifierContext, webhook: str, alert_id: int, error: str) -> int | None:
    return emit(
        ctx, failing_topic(webhook), f"Delivery to '{webhook}' failing",
        f"Alert {alert_id} could not be delivered to the '{webhook}' webhook after every retry ({error})."
        " The alert stays pending in the outbox and its job is in RQ's failed registry"
        " (`sofamon requeue` once Discord answers again).",
        "error",
    )
