"""`sofamon status`: one screen that answers "is it working?", and a health check by its exit status.

Exit status 0 when healthy, 1 when not. The rule, kept deliberately simple (each failed check is
printed as one line under "Problems"):

- Redis answers at REDIS_URL, and the database answers (for SQLite: its file exists);
- the fetcher, the processor and the notifier each have at least one live heartbeat, i.e. one
  that beat less than ALIVE_SECONDS (90 s) ago (heartbeats expire from Redis after 300 s);
- the fetcher recorded a completed cycle less than STALE_CYCLE_SECONDS (45 min: three times the
  longest poll interval, the 15 min of the night) ago, or three times the longest day-time interval
  when SCAN_INTERVAL_MINUTES is set higher than that;
- the fetcher got a good answer from Sofascore within that same limit (a cycle whose requests all
  fail still completes: without this check an unreachable or blocking Sofascore would look fine);
- no Discord webhook ("main", "health") is marked broken in Redis (the notifier marks one when
  Discord answers 401/404 and stops sending to it until the URL is changed and the notifiers restart);
- no alert still to deliver (outbox state pending or sending) was created more than
  STUCK_ALERT_SECONDS (15 min) ago;
- the RQ queue "alerts" holds no failed delivery job (those wait for `rq requeue`).

Being in an upstream backoff is shown but is not a problem by itself: a backoff lasts 30 min at
most, so a fetcher that stays blocked longer than that is caught by the good-answer check.

The module is split in two: `gather` does all the I/O (read-only: nothing is written anywhere)
and returns a `Snapshot`; `build_report` is a pure function of a snapshot that computes the report
and its problems; `render` turns a report into text.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from shared.keys import ALERTS_QUEUE, PROCESSOR_GROUP, Keys
from shared.logs import error_line
from shared.redisconn import decoded, text
from shared.settings import Settings
from shared.webhooks import WEBHOOKS as WEBHOOK_NAMES, setting_name

ROLES = ("fetcher", "processor", "notifier")
ALIVE_SECONDS = 90.0
STALE_CYCLE_SECONDS = 45 * 60.0
STUCK_ALERT_SECONDS = 15 * 60.0
WEBHOOKS = {name: setting_name(name) for name in WEBHOOK_NAMES}
DAY_JITTER = 0.2  # the fetcher's day-time interval is SCAN_INTERVAL_MINUTES ±20 %


def stale_cycle_seconds(settings: Settings) -> float:
    return max(STALE_CYCLE_SECONDS, 3 * settings.scan_interval_minutes * 60 * (1 + DAY_JITTER))


@dataclass
class Snapshot:
    """Everything `status` reads, as read (raw strings where Redis holds strings)."""

    now: float
    redis_url: str
    database_dialect: str
    stale_cycle_seconds: float = STALE_CYCLE_SECONDS
    redis_error: str | None = None  # "unreachable: ..." or "failed: ..."
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    fetcher_state: dict[str, str] = field(default_factory=dict)
    monitored: dict[str, str] = field(default_factory=dict)  # predictor id -> JSON state
    fetched_stream: str = ""
    fetched_length: int | None = None
    dead_stream: str = ""
    dead_length: int | None = None
    group: dict[str, Any] | None = None  # None: the consumer group does not exist (yet)
    queue: dict[str, int] | None = None
    broken_webhooks: dict[str, str] = field(default_factory=dict)  # webhook name -> fingerprint of the bad URL
    database_error: str | None = None
    sent_last_hour: int | None = None
    sent_last_day: int | None = None
    alerts_by_state: dict[str, int] | None = None
    database_size: int | None = None
    waiting_alerts: int | None = None  # alerts pending or sending
    oldest_waiting_at: float | None = None  # created_at of the oldest of them


# -- the pure part ---------------------------------------------------------------------------------


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _ago(ts: float | None, now: float) -> float | None:
    return None if ts is None else round(now - ts, 1)


def _role_of(beat: dict[str, Any]) -> str:
    return str(beat.get("name") or "?").split(":", 1)[0]


def _processes(beats: list[dict[str, Any]], now: float) -> dict[str, Any]:
    roles: dict[str, Any] = {role: {"alive": False, "last_seen_ago": None, "instances": []} for role in ROLES}
    for beat in beats:
        at = _float(beat.get("at"))
        age = _ago(at, now)
        alive = age is not None and age < ALIVE_SECONDS
        info = {k: v for k, v in beat.items() if k not in ("name", "at")}
        role = roles.setdefault(_role_of(beat), {"alive": False, "last_seen_ago": None, "instances": []})
        role["instances"].append({"name": beat.get("name"), "at": at, "ago": age, "alive": alive, "info": info})
        role["alive"] = role["alive"] or alive
        if age is not None and (role["last_seen_ago"] is None or age < role["last_seen_ago"]):
            role["last_seen_ago"] = age
    return roles


def _fetcher(state: dict[str, str], now: float, stale_after: float) -> dict[str, Any]:
    last = _float(state.get("last_cycle_at"))
    until = _float(state.get("backoff_until"))
    since = _float(state.get("blocked_since"))
    nxt = _float(state.get("next_poll_at"))
    board = _float(state.get("leaderboard_at"))
    success = _float(state.get("last_success_at"))
    return {
        "last_success_at": success,
        "last_success_ago": _ago(success, now),
        "failing": success is None or now - success > stale_after,
        "last_cycle_at": last,
        "last_cycle_ago": _ago(last, now),
        "next_poll_at": nxt,
        "next_poll_in": None if nxt is None else round(nxt - now, 1),
        "leaderboard_at": board,
        "leaderboard_ago": _ago(board, now),
        "stale_after_seconds": stale_after,
        "stale": last is None or now - last > stale_after,
        "upstream": {
            "blocked": until is not None and until > now,
            "backoff_until": until,
            "backoff_seconds": _float(state.get("backoff_seconds")) or 0.0,
            "blocked_since": since,
        },
    }


def _selected_ids(state: dict[str, str]) -> list[str]:
    try:
        ids = json.loads(state.get("monitored") or "null")
    except ValueError:
        return []
    return [str(i) for i in ids] if isinstance(ids, list) else []


def _predictors(monitored: dict[str, str], state: dict[str, str], now: float) -> list[dict[str, Any]]:
    selected = _selected_ids(state)
    order = {pid: i for i, pid in enumerate(selected)}
    rows = []
    for pid, raw in monitored.items():
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {"last_status": "unreadable state"}
        last = _float(data.get("last_fetch"))
        paused = _float(data.get("paused_until"))
        rows.append({
            "id": pid,
            "nickname": data.get("nickname"),
            "selected": pid in order,
            "last_fetch": last,
            "last_fetch_ago": _ago(last, now),
            "strikes": data.get("strikes") or 0,
            "paused_until": paused,
            "paused": paused is not None and paused > now,
            "last_status": data.get("last_status"),
        })
    rows.sort(key=lambda r: (order.get(r["id"], len(order)), str(r["nickname"] or r["id"]).casefold()))
    return rows


def build_report(snap: Snapshot) -> dict[str, Any]:
    """The report and its problems, computed from a snapshot alone (no clock, no I/O)."""
    now = snap.now
    problems: list[str] = []
    report: dict[str, Any] = {
        "healthy": True,
        "problems": problems,
        "generated_at": now,
        "redis": {"url": snap.redis_url, "reachable": snap.redis_error is None, "error": snap.redis_error},
        "processes": None,
        "fetcher": None,
        "predictors": None,
        "streams": None,
        "queue": None,
        "webhooks": None,
        "alerts": None,
        "database": {
            "dialect": snap.database_dialect,
            "reachable": snap.database_error is None,
            "error": snap.database_error,
            "size_bytes": snap.database_size,
        },
    }
    if snap.redis_error is not None:
        problems.append(f"Redis at {snap.redis_url} {snap.redis_error}")
    else:
        processes = _processes(snap.heartbeats, now)
        report["processes"] = processes
        for role in ROLES:
            entry = processes[role]
            if not entry["alive"]:
                seen = entry["last_seen_ago"]
                when = f"last seen {human_ago(seen)}" if seen is not None else "none found"
                problems.append(f"no live {role} heartbeat ({when})")
        fetcher = _fetcher(snap.fetcher_state, now, snap.stale_cycle_seconds)
        report["fetcher"] = fetcher
        if fetcher["last_cycle_at"] is None:
            problems.append("the fetcher has not recorded a completed cycle")
        elif fetcher["stale"]:
            problems.append(f"the fetcher's last cycle was {human_ago(fetcher['last_cycle_ago'])}"
                            f" (limit {human_duration(snap.stale_cycle_seconds)})")
        elif fetcher["failing"]:
            when = human_ago(fetcher["last_success_ago"]) if fetcher["last_success_at"] else "never"
            problems.append(f"no good answer from Sofascore within {human_duration(snap.stale_cycle_seconds)}"
                            f" (last: {when})")
        report["predictors"] = _predictors(snap.monitored, snap.fetcher_state, now)
        report["streams"] = {
            "fetched": {"key": snap.fetched_stream, "length": snap.fetched_length},
            "dead_letters": {"key": snap.dead_stream, "length": snap.dead_length},
            "group": None if snap.group is None else {"name": PROCESSOR_GROUP, **snap.group},
        }
        report["queue"] = None if snap.queue is None else {"name": ALERTS_QUEUE, **snap.queue}
        report["webhooks"] = {name: {"broken": name in snap.broken_webhooks,
                                     "fingerprint": snap.broken_webhooks.get(name)} for name in WEBHOOKS}
        for name, setting in WEBHOOKS.items():
            if name in snap.broken_webhooks:
                problems.append(f"webhook {name} is broken (Discord answered 401/404);"
                                f" fix {setting} and restart the notifiers")
        failed = (snap.queue or {}).get("failed") or 0
        if failed > 0:
            problems.append(f"{failed:,} failed delivery job(s): see rq-dashboard,"
                            f" requeue with `rq requeue --all --queue {ALERTS_QUEUE}`")
    if snap.database_error is not None:
        problems.append(f"database unavailable ({snap.database_dialect}): {snap.database_error}")
    else:
        report["alerts"] = {
            "sent_last_hour": snap.sent_last_hour,
            "sent_last_day": snap.sent_last_day,
            "by_state": dict(sorted((snap.alerts_by_state or {}).items())),
            "waiting": snap.waiting_alerts,
            "oldest_waiting_at": snap.oldest_waiting_at,
            "oldest_waiting_ago": _ago(snap.oldest_waiting_at, now),
            "stuck_after_seconds": STUCK_ALERT_SECONDS,
            "stuck": snap.oldest_waiting_at is not None and now - snap.oldest_waiting_at > STUCK_ALERT_SECONDS,
        }
        if report["alerts"]["stuck"]:
            problems.append(f"{_count(snap.waiting_alerts)} alert(s) waiting,"
                            f" the oldest for {human_duration(now - snap.oldest_waiting_at)}")
    report["healthy"] = not problems
    return report


# -- text ------------------------------------------------------------------------------------------


def human_bytes(size: int | None) -> str:
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - not reached


def human_duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{seconds / 86400:.0f} d"


def human_ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 0:
        return f"in {human_duration(seconds)}"
    return "just now" if seconds < 1 else f"{human_duration(seconds)} ago"


def human_in(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return f"in {human_duration(seconds)}" if seconds >= 0 else f"{human_duration(seconds)} overdue"


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def render(report: dict[str, Any]) -> str:
    verdict = "healthy" if report["healthy"] else "UNHEALTHY"
    if not report["redis"]["reachable"]:
        # Nothing else worth showing: one line per problem (Redis, and the database if it is down too).
        return "\n".join(f"UNHEALTHY: {p}" for p in report["problems"])
    lines = [f"sofamon status: {verdict}  ({datetime.fromtimestamp(report['generated_at']):%Y-%m-%d %H:%M:%S})", ""]

    lines.append("processes")
    rows = []
    for role, entry in report["processes"].items():
        if not entry["instances"]:
            rows.append([role, "-", "MISSING", ""])
        for inst in entry["instances"]:
            # Timestamps (next_poll_at, ...) are shown in their own sections; the rest are counters.
            extra = ", ".join(f"{k}={v}" for k, v in inst["info"].items()
                              if not isinstance(v, (dict, list)) and not k.endswith("_at"))
            rows.append([role, str(inst["name"]), "alive" if inst["alive"] else "STALE",
                         f"seen {human_ago(inst['ago'])}" + (f"  ({extra})" if extra else "")])
    lines += _table(rows)

    fetcher = report["fetcher"]
    up = fetcher["upstream"]
    if up["blocked"]:
        upstream = f"BLOCKED until {_clock(up['backoff_until'])} ({human_in(up['backoff_until'] - report['generated_at'])})," \
                   f" backoff {human_duration(up['backoff_seconds'])}"
        if up["blocked_since"] is not None:
            upstream += f", since {human_ago(report['generated_at'] - up['blocked_since'])}"
    elif up["blocked_since"] is not None:
        upstream = f"backoff over, waiting for a good answer (blocked since {human_ago(report['generated_at'] - up['blocked_since'])})"
    else:
        upstream = "ok"
    lines += ["", "fetcher"]
    lines += _table([
        ["last cycle", human_ago(fetcher["last_cycle_ago"]) + ("  (STALE)" if fetcher["stale"] else "")],
        ["last success", human_ago(fetcher["last_success_ago"]) + ("  (FAILING)" if fetcher["failing"] else "")],
        ["next poll", human_in(fetcher["next_poll_in"])],
        ["leaderboard", human_ago(fetcher["leaderboard_ago"])],
        ["upstream", upstream],
    ])

    predictors = report["predictors"]
    lines += ["", f"predictors ({len(predictors)} monitored)"]
    rows = []
    for p in predictors:
        if p["paused"]:
            state = f"PAUSED until {_clock(p['paused_until'])}"
        else:
            state = p["last_status"] or "-"
        if p["strikes"]:
            state += f", {p['strikes']} strike(s)"
        rows.append([str(p["nickname"] or "?"), p["id"], f"fetched {human_ago(p['last_fetch_ago'])}", state])
    lines += _table(rows) if rows else ["  (none recorded)"]

    streams = report["streams"]
    group = streams["group"]
    if group is None:
        group_text = "not created yet"
    else:
        lag = "unknown" if group.get("lag") is None else f"{group['lag']:,}"
        group_text = f"pending {group.get('pending', 0):,}, lag {lag}, consumers {group.get('consumers', 0)}"
    queue = report["queue"]
    queue_text = "unknown" if queue is None else (
        f"queued {queue['queued']:,}, waiting to retry {queue['scheduled']:,}, in progress {queue['started']:,},"
        f" failed {queue['failed']:,}" + ("  (FAILED)" if queue["failed"] else "") + f", workers {queue['workers']}")
    webhooks_text = ", ".join(f"{name} BROKEN (url {hook['fingerprint']})" if hook["broken"] else f"{name} ok"
                              for name, hook in report["webhooks"].items())
    lines += ["", "redis"]
    lines += _table([
        ["fetched stream", f"{_count(streams['fetched']['length'])} entries"],
        ["dead letters", f"{_count(streams['dead_letters']['length'])} entries"],
        [f"group {PROCESSOR_GROUP}", group_text],
        [f"queue {ALERTS_QUEUE}", queue_text],
        ["webhooks", webhooks_text],
    ])

    database = report["database"]
    lines += ["", "database"]
    if database["reachable"]:
        alerts = report["alerts"]
        states = ", ".join(f"{k} {v:,}" for k, v in alerts["by_state"].items()) or "none yet"
        if not alerts["waiting"] or alerts["oldest_waiting_ago"] is None:
            waiting = _count(alerts["waiting"])
        else:
            waiting = f"{alerts['waiting']:,}, the oldest for {human_duration(alerts['oldest_waiting_ago'])}" \
                      + ("  (STUCK)" if alerts["stuck"] else "")
        lines += _table([
            ["size", f"{human_bytes(database['size_bytes'])} ({database['dialect']})"],
            ["alerts sent", f"{_count(alerts['sent_last_hour'])} in the last hour,"
                            f" {_count(alerts['sent_last_day'])} in the last day"],
            ["alerts by state", states],
            ["alerts waiting", waiting],
        ])
    else:
        lines.append(f"  UNAVAILABLE ({database['dialect']}): {database['error']}")

    lines += ["", "problems"]
    lines += [f"  - {p}" for p in report["problems"]] or ["  none"]
    return "\n".join(lines)


# -- gathering (I/O) -------------------------------------------------------------------------------


def safe_url(url: str) -> str:
    """The URL without its password, for printing."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))






def _read_heartbeats(conn: redis.Redis, keys: Keys) -> list[dict[str, Any]]:
    """Like shared.heartbeat.read_all, but an unreadable heartbeat is shown rather than fatal."""
    found = []
    marker = keys.heartbeat("")
    for key in conn.scan_iter(match=keys.heartbeats, count=500):
        raw = conn.get(key)
        if raw is None:
            continue  # expired between SCAN and GET
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"at": None}
        body.setdefault("name", text(key).removeprefix(marker))
        found.append(body)
    return sorted(found, key=lambda b: str(b.get("name")))


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


def _queue(conn: redis.Redis) -> dict[str, int]:
    from rq import Queue, Worker

    queue = Queue(ALERTS_QUEUE, connection=conn)
    # cleanup=False: status reads, it never moves jobs between registries.
    return {
        "queued": queue.count,
        "scheduled": queue.scheduled_job_registry.get_job_count(cleanup=False),
        "started": queue.started_job_registry.get_job_count(cleanup=False),
        "failed": queue.failed_job_registry.get_job_count(cleanup=False),
        "workers": Worker.count(connection=conn, queue=queue),
    }


def _gather_redis(conn: redis.Redis, keys: Keys, snap: Snapshot) -> None:
    conn.ping()
    snap.heartbeats = _read_heartbeats(conn, keys)
    snap.fetcher_state = decoded(conn.hgetall(keys.fetcher_state))
    snap.monitored = decoded(conn.hgetall(keys.monitored))
    snap.fetched_length = int(conn.xlen(keys.fetched))
    snap.dead_length = int(conn.xlen(keys.dead_letters))
    snap.group = _group(conn, keys.fetched)
    snap.queue = _queue(conn)
    for name in WEBHOOKS:
        fingerprint = conn.get(keys.webhook_broken(name))
        if fingerprint is not None:
            snap.broken_webhooks[name] = text(fingerprint)


def _gather_database(url: str, snap: Snapshot) -> None:
    from shared import outbox
    from shared.storage import Database

    db = Database(url)
    if db.dialect == "sqlite" and db.sqlite_path != ":memory:" and not os.path.exists(db.sqlite_path):
        # Opening it would create an empty file: say what is wrong instead.
        snap.database_error = f"no database file at {db.sqlite_path} (run `sofamon init-db`)"
        return
    try:
        snap.sent_last_hour = outbox.count_sent_since(db, snap.now - 3600)
        snap.sent_last_day = outbox.count_sent_since(db, snap.now - 86400)
        snap.alerts_by_state = outbox.count_by_state(db)
        snap.database_size = db.size_bytes()
        with db.tx() as tx:
            row = tx.one("SELECT COUNT(*), MIN(created_at) FROM alerts WHERE state IN (?, ?)",
                         (outbox.PENDING, outbox.SENDING))
        snap.waiting_alerts = int(row[0]) if row else 0
        snap.oldest_waiting_at = _float(row[1]) if row else None
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
        database_dialect="postgresql" if settings.database_url.startswith(("postgresql://", "postgres://"))
        else "sqlite",
        stale_cycle_seconds=stale_cycle_seconds(settings),
        fetched_stream=keys.fetched,
        dead_stream=keys.dead_letters,
    )
    conn = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=10)
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
    print(json.dumps(report, indent=2, sort_keys=False) if as_json else render(report))
    return 0 if report["healthy"] else 1
