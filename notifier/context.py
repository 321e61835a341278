"""The process-wide state the delivery job uses, set up once by the notifier's main.

RQ calls `deliver_alert(alert_id)` with nothing but the alert id; everything else (settings,
database, Redis, the shared rate limiter, this process's owner name) comes from here.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

import redis
import requests
from rq import Queue

from notifier.discord import new_session
from notifier.ratelimit import RateLimiter
from shared.heartbeat import process_name
from shared.jobs import RETRY_INTERVALS, alerts_queue
from shared.keys import Keys
from shared.webhooks import webhook_url
from shared.redisconn import connect
from shared.settings import Settings
from shared.storage import Database


@dataclass(frozen=True)
class NotifierConfig:
    """Timings of the notifier; defaults for production, shorter ones for tests.

    Configured through Settings (`NOTIFIER_LEASE_SECONDS=5`, `NOTIFIER_RETRY_INTERVALS=0,1,2`, ...),
    see `of`; tests may also pass one directly.
    """

    lease_seconds: float = 60.0  # a claimed alert is given back to others after this
    retry_intervals: tuple[int, ...] = tuple(RETRY_INTERVALS)  # for jobs the notifier enqueues itself
    sweep_seconds: float = 30.0
    heartbeat_seconds: float = 30.0
    lock_ttl: float = 30.0  # the per-webhook lock; renewed every third of it while held
    lock_poll: float = 0.2
    http_timeout: float = 10.0
    health_throttle_seconds: int = 900
    claim_limit: int = 10
    scheduler_seconds: float = 1.0

    @classmethod
    def of(cls, settings: Settings) -> "NotifierConfig":
        """The timings configured by the NOTIFIER_* settings."""
        return cls(
            lease_seconds=settings.notifier_lease_seconds,
            retry_intervals=tuple(settings.notifier_retry_intervals),
            sweep_seconds=settings.notifier_sweep_seconds,
            heartbeat_seconds=settings.notifier_heartbeat_seconds,
            lock_ttl=settings.notifier_lock_ttl,
            http_timeout=settings.notifier_http_timeout,
            health_throttle_seconds=settings.notifier_health_throttle_seconds,
        )


@dataclass
class Stats:
    messages: int = 0
    alerts: int = 0
    rate_limited: int = 0


@dataclass
class NotifierContext:
    settings: Settings
    config: NotifierConfig
    db: Database
    redis: redis.Redis
    keys: Keys
    queue: Queue
    limiter: RateLimiter
    owner: str
    session: requests.Session
    stopping: threading.Event = field(default_factory=threading.Event)
    stats: Stats = field(default_factory=Stats)

    def webhook_url(self, webhook: str) -> str | None:
        """The configured URL of a webhook name, None when unset (dry run)."""
        return webhook_url(self.settings, webhook)

    def for_thread(self) -> "NotifierContext":
        """A copy for another thread: its own database connection and HTTP session."""
        return replace(self, db=Database(self.settings.database_url), session=new_session())


def create(settings: Settings, config: NotifierConfig | None = None, *, db: Database | None = None,
           conn: redis.Redis | None = None, owner: str | None = None) -> NotifierContext:
    conn = conn if conn is not None else connect(settings)
    keys = Keys.of(settings)
    return NotifierContext(
        settings=settings,
        config=config or NotifierConfig(),
        db=db if db is not None else Database(settings.database_url),
        redis=conn,
        keys=keys,
        queue=alerts_queue(conn),
        limiter=RateLimiter(conn, keys, settings.discord_messages_per_minute),
        owner=owner or process_name("notifier"),
        session=new_session(),
    )


_current: NotifierContext | None = None
_lock = threading.Lock()


def install(ctx: NotifierContext) -> None:
    global _current
    with _lock:
        _current = ctx


def reset() -> None:
    global _current
    with _lock:
        _current = None


def get() -> NotifierContext:
    """The context set up by `notifier.main`; built from the environment when a plain
    `rq worker` runs the job."""
    global _current
    with _lock:
        if _current is None:
            settings = Settings()
            _current = create(settings, NotifierConfig.of(settings))
            _current.db.migrate()
        return _current
