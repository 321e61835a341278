"""`sofamon status`: one screen that answers "is it working?", and a health check by its exit status.

`gather` reads (never writes) Redis and the database through the owners of each piece of state and
returns a `Snapshot`; sofamon/statusrules.py applies the rules; sofamon/statusview.py draws the text.
Exit status 0 when healthy, 1 when not.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict
from typing import Any

import psycopg
import redis

from fetcher import usage
from notifier.webhooks import broken_webhooks, failing_webhooks
from shared import heartbeat, outbox
from shared.console import show
from shared.keys import ALERTS_QUEUE, PROCESSOR_GROUP, Keys
from shared.logs import error_line, safe_url
from shared.redisconn import connect, text, through_sentinel
from shared.settings import Settings
from shared.storage import Database
from shared.webhooks import WEBHOOKS, webhook_url
from sofamon.statusrules import Snapshot, build_report, stale_cycle_seconds
from sofamon.statusview import render


def _group(conn: redis.Redis, stream: str) -> dict[str, Any] | None:
    try:
        groups = conn.xinfo_groups(stream)
    except redis.ResponseError:
        return None  # no such stream yet
    for group in groups:
        if text(group.get("name")) == PROCESSOR_GROUP:
            lag = group.get("lag")
            return {"pending": int(group.get("pending") or 0), "lag": None if lag is None else int(lag),
                    "consumers": int(group.get("consumers") or 0),
                    "last_delivered_id": text(group.get("last-delivered-id", ""))}
    return None


def _queue(conn: redis.Redis, keys: Keys) -> dict[str, int]:
    from rq import Queue, Worker

    queue = Queue(ALERTS_QUEUE, connection=conn)
    # cleanup=False: status reads, it never moves jobs between registries.
    return {
        "queued": queue.count,
        "scheduled": queue.scheduled_job_registry.get_job_count(cleanup=False),
        "started": queue.started_job_registry.get_job_count(cleanup=False),
        "failed": queue.failed_job_registry.get_job_count(cleanup=False),
        "workers": Worker.count(connection=conn, queue=queue),
        # Started jobs lingering as a webhook's drain (notifier/lingering.py): waiting for alerts, not stuck.
        "lingering": sum(1 for name in WEBHOOKS if conn.exists(keys.drain_owner(name))),
    }


def _gather_redis(conn: redis.Redis, keys: Keys, snap: Snapshot) -> None:
    conn.ping()
    if through_sentinel(conn):
        host, port = conn.connection_pool.master_address
        snap.redis_master = f"{host}:{port}"
    snap.heartbeats = heartbeat.read_all(conn, keys)
    snap.fetcher_state = {text(k): text(v) for k, v in conn.hgetall(keys.fetcher_state).items()}
    snap.monitored = {text(k): text(v, "replace") for k, v in conn.hgetall(keys.monitored).items()}
    used = usage.last_hour(conn, keys, snap.now)
    snap.requests_last_hour, snap.requests_busiest_minute = used.by_kind, used.busiest_minute
    snap.fetched_length = int(conn.xlen(keys.fetched))
    snap.dead_length = int(conn.xlen(keys.dead_letters))
    snap.group = _group(conn, keys.fetched)
    snap.queue = _queue(conn, keys)
    snap.broken_webhooks = broken_webhooks(conn, keys)
    snap.failing_webhooks = {name: asdict(failing) for name, failing in failing_webhooks(conn, keys).items()}


def _gather_database(url: str, snap: Snapshot) -> None:
    db = Database(url)
    snap.database_error = db.missing()
    if snap.database_error is not None:
        return
    try:
        snap.sent_last_hour = outbox.count_sent_since(db, snap.now - 3600)
        snap.sent_last_day = outbox.count_sent_since(db, snap.now - 86400)
        snap.alerts_by_state = outbox.count_by_state(db)
        snap.database_size = db.size_bytes()
        snap.waiting_alerts, snap.oldest_waiting_at = outbox.waiting(db)
        snap.possible_duplicates = {kind: asdict(seen) for kind, seen in outbox.possible_duplicates(db).items()}
        snap.dry_run_last_hour = outbox.count_dry_run_since(db, snap.now - 3600)
        snap.dry_run_last_day = outbox.count_dry_run_since(db, snap.now - 86400)
    except (sqlite3.Error, psycopg.Error, OSError) as error:
        snap.database_error = error_line(error)
    finally:
        db.close()


def gather(settings: Settings, now: float | None = None) -> Snapshot:
    """Read everything the report needs; unreachable services are recorded, never raised."""
    keys = Keys.of(settings)
    snap = Snapshot(
        now=time.time() if now is None else now,
        redis_url=safe_url(settings.redis_url),
        database_dialect=Database(settings.database_url).dialect,
        stale_cycle_seconds=stale_cycle_seconds(settings),
        budget_per_minute=settings.upstream_max_requests_per_minute,
        fetched_stream=keys.fetched,
        dead_stream=keys.dead_letters,
        webhook_configured={name: webhook_url(settings, name) is not None for name in WEBHOOKS},
    )
    conn = connect(settings, socket_timeout=10, connect_timeout=3)
    try:
        _gather_redis(conn, keys, snap)
    except (redis.ConnectionError, redis.TimeoutError) as error:
        snap.redis_error = f"unreachable: {error_line(error)}"
    except redis.RedisError as error:
        snap.redis_error = f"failed: {error_line(error)}"
    finally:
        conn.close()
    _gather_database(settings.database_url, snap)
    return snap


def run(settings: Settings, as_json: bool = False) -> int:
    report = build_report(gather(settings))
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=False))
    else:
        show(render(report))
    return 0 if report["healthy"] else 1
