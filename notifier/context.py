"""The process-wide state the delivery job uses, set up once by the notifier's main.

RQ calls `deliver_alert(alert_id)` with nothing but the alert id; everything else (settings,
database, Redis, the shared rate limiter, this process's owner name) comes from here.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace

import redis
import requests
from rq import Queue

from notifier import liveness
from notifier.discord import new_session
from notifier.ratelimit import RateLimiter
from shared import heartbeat
from shared.heartbeat import Timing
from shared.jobs import alerts_queue
from shared.keys import Keys
from shared.outage import Outage, redis_reason
from shared.redisconn import connect
from shared.settings import Settings
from shared.storage import Database
from shared.webhooks import webhook_url

log = logging.getLogger("notifier")
# What the notifier does while Redis or the database is away (the outage's first line says it).
RESUMES = "delivery resumes by itself"


@dataclass(frozen=True)
class NotifierConfig:
    """The notifier's timings, read from the NOTIFIER_* settings (Settings holds their defaults)."""

    lease_seconds: float  # a claimed alert is given back to others after this
    retry_intervals: tuple[int, ...]  # for jobs the notifier enqueues itself
    sweep_seconds: float
    heartbeat_seconds: float
    timing: Timing  # heartbeats: how often, their timeout, how often to look for gone notifiers
    lock_ttl: float  # the per-webhook lock; renewed every third of it while held
    http_timeout: float
    health_throttle_seconds: int
    # How long a job that sent its webhook's backlog waits for more as the webhook's drain (0: not at all).
    linger_seconds: float = 0.0

    @classmethod
    def of(cls, settings: Settings, *, linger: bool = False) -> "NotifierConfig":
        """The settings' timings; a drain lingers only when asked (`linger`: a notifier's foreground mode)."""
        return cls(
            lease_seconds=settings.notifier_lease_seconds,
            retry_intervals=tuple(settings.notifier_retry_intervals),
            sweep_seconds=settings.notifier_sweep_seconds,
            heartbeat_seconds=settings.notifier_heartbeat_seconds,
            timing=Timing.of(settings),
            lock_ttl=settings.notifier_lock_ttl,
            http_timeout=settings.notifier_http_timeout,
            health_throttle_seconds=settings.notifier_health_throttle_seconds,
            linger_seconds=settings.notifier_linger_seconds if linger else 0.0,
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
    mode: str | None = None  # heartbeat.BURST for `notify --burst`
    stats: Stats = field(default_factory=Stats)
    # Shared by the process's threads (for_thread keeps them): one line per outage, not one per thread.
    redis_outage: Outage = field(default_factory=lambda: Outage("Redis", log, RESUMES, reason=redis_reason))
    db_outage: Outage = field(default_factory=lambda: Outage("database", log, RESUMES))
    # Webhook -> token of the drain this process runs for it (`notifier.lingering`); shared by its threads.
    draining: dict[str, str] = field(default_factory=dict)

    def webhook_url(self, webhook: str) -> str | None:
        """The configured URL of a webhook name, None when unset (dry run)."""
        return webhook_url(self.settings, webhook)

    def owner_dead(self, owner: str) -> bool:
        """Whether the notifier `owner` is gone (its heartbeat says so, wherever it ran)."""
        return liveness.owner_dead(self.redis, self.keys, owner, self.config.timing)

    def for_thread(self) -> "NotifierContext":
        """A copy for another thread: its own database connection and HTTP session."""
        return replace(self, db=Database(self.settings.database_url), session=new_session())


def create(settings: Settings, *, db: Database | None = None, conn: redis.Redis | None = None,
           owner: str | None = None, linger: bool = False) -> NotifierContext:
    """The context of a notifier configured by `settings`; its own database and Redis connection unless given.
    `linger`: its delivery jobs stay as their webhook's drain for NOTIFIER_LINGER_SECONDS (a long-running worker)."""
    conn = conn if conn is not None else connect(settings)
    keys = Keys.of(settings)
    return NotifierContext(
        settings=settings,
        config=NotifierConfig.of(settings, linger=linger),
        db=db if db is not None else Database(settings.database_url),
        redis=conn,
        keys=keys,
        queue=alerts_queue(conn),
        limiter=RateLimiter(conn, keys, settings.discord_messages_per_minute),
        owner=owner or liveness.owner_name(),
        session=new_session(),
    )


_current: NotifierContext | None = None
_beating: heartbeat.Beater | None = None  # the heartbeat of a context built by `get`
_lock = threading.Lock()


def install(ctx: NotifierContext) -> None:
    global _current
    with _lock:
        _current = ctx


def reset() -> None:
    global _current, _beating
    with _lock:
        _current = None
        if _beating is not None:
            _beating.stop()
            _beating = None


def get() -> NotifierContext:
    """The context set up by `notifier.main`; built from the environment when a plain
    `rq worker` runs the job (then with a heartbeat of its own: without one, other notifiers would take
    its lock and claims as those of a gone notifier)."""
    global _current, _beating
    with _lock:
        if _current is None:
            settings = Settings()
            _current = create(settings, linger=True)
            _current.db.migrate()
            _beating = liveness.beater(_current).start()
        return _current
