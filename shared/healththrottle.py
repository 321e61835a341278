"""The health-alert throttle: at most one health alert of a kind (a topic) per NOTIFIER_HEALTH_THROTTLE_SECONDS,
whichever process raises it.

One Redis key per topic (`Keys.health_throttle`), set with NX and an expiry: the notifier's own health
alerts (notifier/health.py) and the processor's alerts of Sofascore blocking us count against the same keys,
so any number of processors and notifiers share one throttle.
"""
from __future__ import annotations

import redis

from shared.keys import Keys
from shared.redisconn import text


def take(conn: redis.Redis, keys: Keys, topic: str, seconds: float, *, holder: str) -> bool:
    """True when `holder` may raise the alert of `topic` now: the period was free (it is `holder`'s from now
    on) or is `holder`'s already (the same alert tried again after a failure or a crash, which the outbox
    makes one alert). False while another alert of the topic holds the period."""
    key = keys.health_throttle(topic)
    expiry = max(1, int(seconds))
    for _ in range(2):  # a period that ends between SET and GET is free: one more try
        if conn.set(key, holder, nx=True, ex=expiry):
            return True
        current = conn.get(key)
        if current is not None:
            return text(current, "replace") == holder
    return False
