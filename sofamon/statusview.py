"""`sofamon status` as text: the report of sofamon/statusrules.py in sections of aligned rows."""
from __future__ import annotations

from typing import Any

from shared.console import table
from shared.keys import ALERTS_QUEUE, PROCESSOR_GROUP
from shared.timefmt import ago, due_in, duration, local_clock, local_stamp
from sofamon.statusrules import NOT_CONFIGURED


def human_bytes(size: int | None) -> str:
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - not reached


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _section(title: str, rows: list[list[str]]) -> list[str]:
    return ["", title, *table(rows, indent=2)]


def _processes(report: dict[str, Any]) -> list[list[str]]:
    """One row per process instance: role, name (`<role>:<instance id>`), host, alive or GONE, last beat, and
    the mode of a one-off run and its counters."""
    rows = []
    for role, entry in report["processes"].items():
        if not entry["instances"]:
            rows.append([role, "-", "-", "MISSING", ""])
        for inst in entry["instances"]:
            # Timestamps (next_poll_at, ...) are shown in their own sections; the rest are counters.
            mode = f"mode={inst['mode']}" if inst["mode"] else ""
            counters = ", ".join(f"{k}={v}" for k, v in inst["info"].items()
                                 if not isinstance(v, (dict, list)) and not k.endswith("_at"))
            extra = ", ".join(part for part in (mode, counters) if part)
            host = str(inst["host"]) + (f" pid {inst['pid']}" if inst["pid"] is not None else "") \
                if inst["host"] else "?"
            rows.append([role, str(inst["name"]), host, "alive" if inst["alive"] else "GONE",
                         f"seen {ago(inst['ago'])}" + (f"  ({extra})" if extra else "")])
    return rows


def _upstream(up: dict[str, Any], now: float) -> str:
    if up["blocked"]:
        text = (f"BLOCKED until {local_clock(up['backoff_until'])} ({due_in(up['backoff_until'] - now)}),"
                f" backoff {duration(up['backoff_seconds'])}")
        if up["blocked_since"] is not None:
            text += f", since {ago(now - up['blocked_since'])}"
        return text
    if up["blocked_since"] is not None:
        return f"requests again; the backoff ends after 30 min without a 403/429 (blocked since {ago(now - up['blocked_since'])})"
    return "ok"


def _requests(used: dict[str, Any]) -> str:
    """`412 (predictions 300, odds 100, leaderboard 12); budget 60/min: 11% used, busiest minute 60`."""
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in used["by_kind"].items())
    text = f"{used['last_hour']:,}" + (f" ({kinds})" if kinds else "")
    if used["budget_per_minute"] is None:
        return text + "; no budget (UPSTREAM_MAX_REQUESTS_PER_MINUTE=0)"
    return (text + f"; budget {used['budget_per_minute']}/min: {used['budget_used_pct']:g}% used,"
            f" busiest minute {used['busiest_minute']}")


def _fetcher(report: dict[str, Any]) -> list[list[str]]:
    fetcher = report["fetcher"]
    return [
        ["last cycle", ago(fetcher["last_cycle_ago"]) + ("  (STALE)" if fetcher["stale"] else "")],
        ["last success", ago(fetcher["last_success_ago"]) + ("  (FAILING)" if fetcher["failing"] else "")],
        ["next poll", due_in(fetcher["next_poll_in"])],
        ["leaderboard", ago(fetcher["leaderboard_ago"])],
        ["upstream", _upstream(fetcher["upstream"], report["generated_at"])],
        ["requests, last hour", _requests(fetcher["requests"])],
    ]


def _predictors(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for p in report["predictors"]:
        state = f"PAUSED until {local_clock(p['paused_until'])}" if p["paused"] else p["last_status"] or "-"
        if p["strikes"]:
            state += f", {p['strikes']} strike(s)"
        rows.append([str(p["nickname"] or "?"), p["id"], f"fetched {ago(p['last_fetch_ago'])}", state])
    return rows


def _redis(report: dict[str, Any]) -> list[list[str]]:
    streams, queue = report["streams"], report["queue"]
    group = streams["group"]
    if group is None:
        group_text = "not created yet"
    else:
        lag = "unknown" if group.get("lag") is None else f"{group['lag']:,}"
        group_text = f"pending {group.get('pending', 0):,}, lag {lag}, consumers {group.get('consumers', 0)}"
    queue_text = "unknown" if queue is None else (
        f"queued {queue['queued']:,}, waiting to retry {queue['scheduled']:,}, in progress {queue['started']:,}"
        + (f" ({queue['lingering']} lingering as a webhook's drain)" if queue.get("lingering") else "")
        + f", failed {queue['failed']:,}" + ("  (FAILED)" if queue["failed"] else "") + f", workers {queue['workers']}")
    configured = {name: hook["configured"] for name, hook in report["dry_run"]["webhooks"].items()}
    webhooks = ", ".join(_webhook(name, hook, configured.get(name, True), report["generated_at"])
                         for name, hook in report["webhooks"].items())
    master = report["redis"].get("master")
    return [
        *([["master", f"{master} (named by the Sentinels)"]] if master else []),
        ["fetched stream", f"{_count(streams['fetched']['length'])} entries"],
        ["dead letters", f"{_count(streams['dead_letters']['length'])} entries"],
        [f"group {PROCESSOR_GROUP}", group_text],
        [f"queue {ALERTS_QUEUE}", queue_text],
        ["webhooks", webhooks],
    ]


def _webhook(name: str, hook: dict[str, Any], configured: bool, now: float) -> str:
    if hook["broken"]:
        return f"{name} BROKEN (url {hook['fingerprint']})"
    if not configured:
        return f"{name} DRY RUN (not configured)"
    failing = hook.get("failing")
    if failing:
        answer = f"HTTP {failing['last_status']}" if failing["last_status"] else "no answer"
        return (f"{name} FAILING ({failing['attempts']:,} attempt(s) since {ago(now - failing['since'])},"
                f" last: {answer}, {failing['last_error']})")
    return f"{name} ok"


def _duplicates(alerts: dict[str, Any], now: float) -> str:
    seen = alerts.get("possible_duplicates") or {}
    if not seen:
        return "none"
    return ", ".join(f"{kind} {d['times']:,}x ({d['alerts']:,} alert(s),"
                     f" last {ago(now - d['last_at']) if d['last_at'] else '?'})" for kind, d in sorted(seen.items()))


def _dry_counts(report: dict[str, Any], webhook: str | None = None) -> tuple[int | None, int | None]:
    """Dry-run alerts of the last hour and day, of one webhook or all (None when unknown)."""
    hooks = report["dry_run"]["webhooks"]
    names = [webhook] if webhook else list(hooks)
    hour = [hooks[n]["last_hour"] for n in names]
    day = [hooks[n]["last_day"] for n in names]
    return (None if None in hour else sum(hour)), (None if None in day else sum(day))


def _dry_run_line(report: dict[str, Any]) -> list[str]:
    """Right under the verdict: alerts that are not reaching Discord must not go unnoticed."""
    dry = report["dry_run"]
    if not dry["active"]:
        return []
    hour, day = _dry_counts(report, "main")
    why = f"no webhook configured ({dry['setting']} is not set)" if dry["reason"] == NOT_CONFIGURED \
        else f"{', '.join(dry['notifiers'])} without {dry['setting']}"
    return [f"DRY RUN: {why}: alerts are printed in the notifier's log, not posted;"
            f" {_count(hour)} in the last hour, {_count(day)} in the last day"]


def _database(report: dict[str, Any]) -> list[list[str]]:
    database, alerts = report["database"], report["alerts"]
    states = ", ".join(f"{k} {v:,}" for k, v in alerts["by_state"].items()) or "none yet"
    dry_hour, dry_day = _dry_counts(report)
    if not alerts["waiting"] or alerts["oldest_waiting_ago"] is None:
        waiting = _count(alerts["waiting"])
    else:
        waiting = f"{alerts['waiting']:,}, the oldest for {duration(alerts['oldest_waiting_ago'])}" \
                  + ("  (STUCK)" if alerts["stuck"] else "")
    return [
        ["size", f"{human_bytes(database['size_bytes'])} ({database['dialect']})"],
        ["alerts sent", f"{_count(alerts['sent_last_hour'])} in the last hour,"
                        f" {_count(alerts['sent_last_day'])} in the last day"],
        *([["alerts dry run", f"{_count(dry_hour)} in the last hour, {_count(dry_day)} in the last day"
                                 " (printed, not posted)"]] if dry_day else []),
        ["alerts by state", states],
        ["alerts waiting", waiting],
        ["maybe posted twice", _duplicates(alerts, report["generated_at"])],
    ]


def render(report: dict[str, Any]) -> str:
    if not report["redis"]["reachable"]:
        # Nothing else worth showing: one line per problem (Redis, and the database if it is down too).
        return "\n".join(f"UNHEALTHY: {p}" for p in report["problems"])
    verdict = ("healthy" if report["healthy"] else "UNHEALTHY") + (", DRY RUN" if report["dry_run"]["active"] else "")
    lines = [f"sofamon status: {verdict}  ({local_stamp(report['generated_at'])})", *_dry_run_line(report),
             "", "processes", *table(_processes(report), indent=2)]
    lines += _section("fetcher", _fetcher(report))
    predictors = report["predictors"]
    lines += ["", f"predictors ({len(predictors)} monitored)"]
    lines += table(_predictors(report), indent=2) if predictors else ["  (none recorded)"]
    lines += _section("redis", _redis(report))
    database = report["database"]
    if database["reachable"]:
        lines += _section("database", _database(report))
    else:
        lines += ["", "database", f"  UNAVAILABLE ({database['dialect']}): {database['error']}"]
    lines += ["", "problems"]
    lines += [f"  - {p}" for p in report["problems"]] or ["  none"]
    return "\n".join(lines)
