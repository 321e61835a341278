"""The health rules of `sofamon status`: a pure function from what was read to a report and its problems.

Healthy when every rule holds (each failed rule is one line under "problems"):

- Redis answers at REDIS_URL, and the database answers (for SQLite: its file exists);
- the fetcher, the processor and the notifier each have at least one live heartbeat, i.e. one
  younger than its timeout (half of NOTIFIER_LEASE_SECONDS, at least 3 s: `shared.heartbeat.Timing`; its
  age by Redis's clock; ALIVE_SECONDS, 90 s, for a heartbeat that does not say its timeout) of a
  long-running process: a `fetch --once`, `process --burst` or `notify --burst` run is listed but does not
  count. Each process is listed by instance (`<role>:<instance id>`, unique across machines and restarts)
  with its host, pid, mode and last beat, so two processes on machines that share a hostname are two rows;
  a gone one stays listed for 5 minutes after its timeout (`shared.heartbeat.KEEP_SECONDS`);
- the fetcher recorded a completed cycle within `stale_cycle_seconds`: three times the longest wait
  its schedule can choose (45 min with the 15 min of the night, more when SCAN_INTERVAL_MINUTES is high);
- the fetcher got a good answer from Sofascore within that same limit (a cycle whose requests all
  fail still completes: without this check an unreachable or blocking Sofascore would look fine);
- no Discord webhook is marked broken (the notifier marks one when Discord answers 401/404 and stops
  sending to it until the URL is changed and the notifiers restart);
- no alert still to deliver (outbox state pending or sending) was created more than
  STUCK_ALERT_SECONDS (15 min) ago;
- the RQ queue "alerts" holds no failed delivery job (those wait for `sofamon requeue`);
- no live notifier runs dry (prints alerts instead of posting them) for want of DISCORD_WEBHOOK_URL while
  status's own configuration has it: it was started with another configuration.

Running dry is otherwise no problem (it may be intended), but the report says so first: `dry_run`, from
status's settings (is DISCORD_WEBHOOK_URL set?), the live notifiers' heartbeats (which webhooks each runs
dry, by its own configuration) and the dry-run alerts of the last hour and day.

Being in an upstream backoff is shown but is not a problem by itself: a backoff lasts 30 min at
most, so a fetcher that stays blocked longer than that is caught by the good-answer check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fetcher.schedule import longest_interval
from fetcher.state import FetcherState
from shared.heartbeat import long_running
from shared.keys import ALERTS_QUEUE, PROCESSOR_GROUP
from shared.numbers import opt_float
from shared.settings import Settings
from shared.timefmt import ago, duration
from shared.webhooks import MAIN_WEBHOOK, WEBHOOKS, setting_name

ROLES = ("fetcher", "processor", "notifier")
ALIVE_SECONDS = 90.0  # the timeout of a heartbeat that does not say its own (written before instance ids)
STALE_CYCLE_SECONDS = 45 * 60.0
STUCK_ALERT_SECONDS = 15 * 60.0
# Why alerts are printed instead of posted (`dry_run.reason`).
NOT_CONFIGURED = "no webhook configured"
NOTIFIER_WITHOUT_URL = "a notifier runs without the webhook URL"


def stale_cycle_seconds(settings: Settings) -> float:
    """Three of the longest waits between cycles: one late cycle is not yet a problem."""
    return 3 * longest_interval(settings.scan_interval_minutes)


@dataclass
class Snapshot:
    """Everything `status` reads, as read (the fetcher's hashes raw: fetcher/state.py reads them)."""

    now: float
    redis_url: str
    database_dialect: str
    stale_cycle_seconds: float = STALE_CYCLE_SECONDS
    redis_error: str | None = None  # "unreachable: ..." or "failed: ..."
    redis_master: str | None = None  # `host:port` of the master the Sentinels named (REDIS_URL through Sentinel)
    heartbeats: list[dict[str, Any]] = field(default_factory=list)
    fetcher_state: dict[str, str] = field(default_factory=dict)
    monitored: dict[str, str] = field(default_factory=dict)  # predictor id -> JSON state
    requests_last_hour: dict[str, int] = field(default_factory=dict)  # request kind -> count (fetcher/usage.py)
    requests_busiest_minute: int = 0
    budget_per_minute: int = 0  # UPSTREAM_MAX_REQUESTS_PER_MINUTE (0: no limit)
    fetched_stream: str = ""
    fetched_length: int | None = None
    dead_stream: str = ""
    dead_length: int | None = None
    group: dict[str, Any] | None = None  # None: the consumer group does not exist (yet)
    queue: dict[str, int] | None = None
    broken_webhooks: dict[str, str] = field(default_factory=dict)  # webhook name -> fingerprint of the bad URL
    # Webhook name -> its failed attempts since its last delivery (notifier/webhooks.py Failing, as a dict).
    failing_webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Kind -> how often alerts may have been posted twice (shared/outbox.py PossibleDuplicates, as a dict).
    possible_duplicates: dict[str, dict[str, Any]] = field(default_factory=dict)
    database_error: str | None = None
    sent_last_hour: int | None = None
    sent_last_day: int | None = None
    alerts_by_state: dict[str, int] | None = None
    database_size: int | None = None
    waiting_alerts: int | None = None  # alerts pending or sending
    oldest_waiting_at: float | None = None  # created_at of the oldest of them
    # Which webhooks have a URL in status's own settings (gather reads them; the notifiers normally read
    # the same .env and environment).
    webhook_configured: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(WEBHOOKS, True))
    dry_run_last_hour: dict[str, int] | None = None  # alerts printed instead of posted, per webhook
    dry_run_last_day: dict[str, int] | None = None


def _ago(ts: float | None, now: float) -> float | None:
    return None if ts is None else round(now - ts, 1)


def _role_of(beat: dict[str, Any]) -> str:
    return str(beat.get("name") or "?").split(":", 1)[0]


# What a heartbeat says about its process (listed as such), not counters for the info column.
_IDENTITY = ("name", "at", "age", "role", "instance", "host", "pid", "machine", "started", "timeout", "ttl", "mode")


def _age(beat: dict[str, Any], now: float) -> float | None:
    """Seconds since the beat: by Redis's clock when read with it (`age`), else by the beat's own `at`."""
    age = opt_float(beat.get("age"))
    return round(age, 1) if age is not None else _ago(opt_float(beat.get("at")), now)


def _timeout(beat: dict[str, Any]) -> float:
    return opt_float(beat.get("timeout")) or ALIVE_SECONDS


def _is_alive(beat: dict[str, Any], now: float) -> bool:
    age = _age(beat, now)
    return age is not None and age < _timeout(beat)


def _processes(beats: list[dict[str, Any]], now: float) -> dict[str, Any]:
    roles: dict[str, Any] = {role: {"alive": False, "last_seen_ago": None, "instances": []} for role in ROLES}
    for beat in beats:
        at = opt_float(beat.get("at"))
        age = _age(beat, now)
        alive = _is_alive(beat, now)
        info = {k: v for k, v in beat.items() if k not in _IDENTITY}
        role = roles.setdefault(_role_of(beat), {"alive": False, "last_seen_ago": None, "instances": []})
        role["instances"].append({
            "name": beat.get("name"), "instance": beat.get("instance"), "host": beat.get("host"),
            "pid": beat.get("pid"), "mode": beat.get("mode"), "at": at, "ago": age, "timeout": _timeout(beat),
            "alive": alive, "info": info})
        role["alive"] = role["alive"] or (alive and long_running(beat))  # not a `--once`/`--burst` run
        if age is not None and (role["last_seen_ago"] is None or age < role["last_seen_ago"]):
            role["last_seen_ago"] = age
    return roles


def _fetcher(state: FetcherState, now: float, stale_after: float) -> dict[str, Any]:
    up = state.upstream
    success, last, nxt = state.last_success_at, state.last_cycle_at, state.next_poll_at
    return {
        "last_success_at": success,
        "last_success_ago": _ago(success, now),
        "failing": success is None or now - success > stale_after,
        "last_cycle_at": last,
        "last_cycle_ago": _ago(last, now),
        "next_poll_at": nxt,
        "next_poll_in": None if nxt is None else round(nxt - now, 1),
        "leaderboard_at": state.leaderboard_at,
        "leaderboard_ago": _ago(state.leaderboard_at, now),
        "stale_after_seconds": stale_after,
        "stale": last is None or now - last > stale_after,
        "upstream": {
            "blocked": up.is_blocked(now),
            "backoff_until": up.until,
            "backoff_seconds": up.seconds,
            "blocked_since": up.blocked_since,
        },
    }


def _requests(snap: Snapshot) -> dict[str, Any]:
    """The last hour's requests to Sofascore by kind, and how much of the budget they used."""
    total = sum(snap.requests_last_hour.values())
    limit = snap.budget_per_minute
    return {
        "last_hour": total,
        "by_kind": dict(sorted(snap.requests_last_hour.items(), key=lambda kv: -kv[1])),
        "busiest_minute": snap.requests_busiest_minute,
        "budget_per_minute": limit or None,
        "budget_used_pct": round(100 * total / (60 * limit), 1) if limit else None,
    }


def _predictors(state: FetcherState, now: float) -> list[dict[str, Any]]:
    order = {pid: i for i, pid in enumerate(state.selected or [])}
    rows = []
    for pid, predictor in state.predictors.items():
        paused = predictor.paused_until
        rows.append({
            "id": pid,
            "nickname": predictor.nickname,
            "selected": pid in order,
            "last_fetch": predictor.last_fetch,
            "last_fetch_ago": _ago(predictor.last_fetch, now),
            "strikes": predictor.strikes or 0,
            "paused_until": paused,
            "paused": predictor.is_paused(now),
            "last_status": predictor.last_status,
        })
    rows += [{"id": pid, "nickname": None, "selected": pid in order, "last_fetch": None, "last_fetch_ago": None,
              "strikes": 0, "paused_until": None, "paused": False, "last_status": "unreadable state"}
             for pid in state.unreadable]
    rows.sort(key=lambda r: (order.get(r["id"], len(order)), str(r["nickname"] or r["id"]).casefold()))
    return rows


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _redis_sections(snap: Snapshot, report: dict[str, Any], problems: list[str]) -> None:
    now = snap.now
    processes = _processes(snap.heartbeats, now)
    report["processes"] = processes
    for role in ROLES:
        entry = processes[role]
        if not entry["alive"]:
            seen = entry["last_seen_ago"]
            when = f"last seen {ago(seen)}" if seen is not None else "none found"
            problems.append(f"no live {role} heartbeat ({when})")
    state = FetcherState.from_hashes(snap.fetcher_state, snap.monitored)
    fetcher = _fetcher(state, now, snap.stale_cycle_seconds)
    fetcher["requests"] = _requests(snap)
    report["fetcher"] = fetcher
    if fetcher["last_cycle_at"] is None:
        problems.append("the fetcher has not recorded a completed cycle")
    elif fetcher["stale"]:
        problems.append(f"the fetcher's last cycle was {ago(fetcher['last_cycle_ago'])}"
                        f" (limit {duration(snap.stale_cycle_seconds)})")
    elif fetcher["failing"]:
        when = ago(fetcher["last_success_ago"]) if fetcher["last_success_at"] else "never"
        problems.append(f"no good answer from Sofascore within {duration(snap.stale_cycle_seconds)}"
                        f" (last: {when})")
    report["predictors"] = _predictors(state, now)
    report["streams"] = {
        "fetched": {"key": snap.fetched_stream, "length": snap.fetched_length},
        "dead_letters": {"key": snap.dead_stream, "length": snap.dead_length},
        "group": None if snap.group is None else {"name": PROCESSOR_GROUP, **snap.group},
    }
    report["queue"] = None if snap.queue is None else {"name": ALERTS_QUEUE, **snap.queue}
    report["webhooks"] = {name: {"broken": name in snap.broken_webhooks,
                                 "fingerprint": snap.broken_webhooks.get(name),
                                 "failing": snap.failing_webhooks.get(name)} for name in WEBHOOKS}
    for name in WEBHOOKS:
        if name in snap.broken_webhooks:
            problems.append(f"webhook {name} is broken (Discord answered 401/404);"
                            f" fix {setting_name(name)} and restart the notifiers")
    failed = (snap.queue or {}).get("failed") or 0
    if failed > 0:
        problems.append(f"{failed:,} failed delivery job(s): see rq-dashboard,"
                        " requeue with `sofamon requeue`")


def _alerts(snap: Snapshot, problems: list[str]) -> dict[str, Any]:
    now = snap.now
    stuck = snap.oldest_waiting_at is not None and now - snap.oldest_waiting_at > STUCK_ALERT_SECONDS
    if stuck:
        problems.append(f"{_count(snap.waiting_alerts)} alert(s) waiting,"
                        f" the oldest for {duration(now - snap.oldest_waiting_at)}")  # type: ignore[operator]
    return {
        "sent_last_hour": snap.sent_last_hour,
        "sent_last_day": snap.sent_last_day,
        "by_state": dict(sorted((snap.alerts_by_state or {}).items())),
        "waiting": snap.waiting_alerts,
        "oldest_waiting_at": snap.oldest_waiting_at,
        "oldest_waiting_ago": _ago(snap.oldest_waiting_at, now),
        "stuck_after_seconds": STUCK_ALERT_SECONDS,
        "stuck": stuck,
        "possible_duplicates": snap.possible_duplicates,
    }


def _dry_run(snap: Snapshot, problems: list[str]) -> dict[str, Any]:
    """Whether the main webhook's alerts are printed instead of posted, and why."""
    configured = snap.webhook_configured.get(MAIN_WEBHOOK, True)
    # Live notifiers that say which webhooks they run dry (older ones do not): their word is the truth.
    telling = [b for b in snap.heartbeats
               if _role_of(b) == "notifier" and _is_alive(b, snap.now) and isinstance(b.get("dry_run"), list)]
    dry = sorted(str(b.get("name")) for b in telling if MAIN_WEBHOOK in b["dry_run"])
    if not configured:
        active, reason = bool(dry) or not telling, NOT_CONFIGURED
    else:
        active, reason = bool(dry), NOTIFIER_WITHOUT_URL
    if reason == NOTIFIER_WITHOUT_URL and active:
        who = f"{dry[0]} runs" if len(dry) == 1 else f"{', '.join(dry)} run"
        its = "its" if len(dry) == 1 else "their"
        problems.append(f"{who} dry without {setting_name(MAIN_WEBHOOK)}, which is set here:"
                        f" {its} alerts are printed, not posted (restart the notifiers)")

    def counts(name: str, by_webhook: dict[str, int] | None) -> int | None:
        return None if by_webhook is None else by_webhook.get(name, 0)

    return {
        "active": active,
        "reason": reason if active else None,
        "setting": setting_name(MAIN_WEBHOOK),
        "notifiers": dry,
        "webhooks": {name: {"configured": snap.webhook_configured.get(name, True),
                            "last_hour": counts(name, snap.dry_run_last_hour),
                            "last_day": counts(name, snap.dry_run_last_day)} for name in WEBHOOKS},
    }


def build_report(snap: Snapshot) -> dict[str, Any]:
    """The report and its problems, computed from a snapshot alone (no clock, no I/O)."""
    problems: list[str] = []
    report: dict[str, Any] = {
        "healthy": True,
        "problems": problems,
        "generated_at": snap.now,
        "dry_run": None,
        "redis": {"url": snap.redis_url, "reachable": snap.redis_error is None, "error": snap.redis_error,
                  "master": snap.redis_master},
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
        _redis_sections(snap, report, problems)
    if snap.database_error is not None:
        problems.append(f"database unavailable ({snap.database_dialect}): {snap.database_error}")
    else:
        report["alerts"] = _alerts(snap, problems)
    report["dry_run"] = _dry_run(snap, problems)
    report["healthy"] = not problems
    return report
