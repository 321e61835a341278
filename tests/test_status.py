"""`sofamon status`: the pure report on fixed data, then the command against real Redis and both databases."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from rq import Queue

from fetcher import usage
from shared import heartbeat, outbox
from shared.alerts import HealthAlert
from shared.jobs import enqueue_alert
from shared.keys import ALERTS_QUEUE, Keys
from shared.settings import Settings
from shared.storage import Database
from shared.timefmt import ago as human_ago
from shared.timefmt import local_clock, local_stamp
from sofamon.cli import main
from sofamon.statusrules import ALIVE_SECONDS, STALE_CYCLE_SECONDS, STUCK_ALERT_SECONDS, Snapshot, build_report
from sofamon.status import gather
from sofamon.statusview import human_bytes, render

NOW = 1_795_348_800.0
GURU = "6a1f0c2e9b3d4e5f60718293"
TACTICO = "5e8d7c6b5a4f3e2d1c0b9a87"


# -- the pure report -------------------------------------------------------------------------------


def healthy_snapshot(**changes: Any) -> Snapshot:
    snap = Snapshot(
        now=NOW,
        redis_url="redis://127.0.0.1:6379/0",
        database_dialect="sqlite",
        heartbeats=[
            {"name": "fetcher:box:11", "at": NOW - 10, "last_cycle_at": NOW - 200, "next_poll_at": NOW + 100},
            {"name": "processor:processor-box", "at": NOW - 5, "handled": 42, "pending": 0, "lag": 0},
            {"name": "notifier:box:13", "at": NOW - 30},
        ],
        fetcher_state={"last_cycle_at": repr(NOW - 200), "last_success_at": repr(NOW - 200),
                       "next_poll_at": repr(NOW + 100),
                       "leaderboard_at": repr(NOW - 900), "backoff_until": "", "backoff_seconds": "0.0",
                       "blocked_since": "", "monitored": json.dumps([GURU, TACTICO])},
        monitored={
            TACTICO: json.dumps({"nickname": "Tactico.ES", "last_fetch": NOW - 1500, "strikes": 0,
                                 "paused_until": NOW + 600, "last_status": "not_found"}),
            GURU: json.dumps({"nickname": "GoalGuru_88", "last_fetch": NOW - 200, "strikes": 1,
                              "paused_until": None, "last_status": "ok"}),
        },
        fetched_stream="sofamon:stream:fetched", fetched_length=1234,
        dead_stream="sofamon:stream:dead", dead_length=2,
        group={"pending": 3, "lag": 7, "consumers": 1, "last_delivered_id": "1-0"},
        queue={"queued": 4, "scheduled": 1, "started": 0, "failed": 0, "workers": 1},
        sent_last_hour=3, sent_last_day=12, alerts_by_state={"sent": 12, "pending": 4},
        waiting_alerts=4, oldest_waiting_at=NOW - 120,
        database_size=3 * 1024 * 1024 + 200 * 1024,
    )
    for name, value in changes.items():
        setattr(snap, name, value)
    return snap


def test_healthy_report_has_every_section_and_no_problems() -> None:
    report = build_report(healthy_snapshot())
    assert report["healthy"] is True and report["problems"] == []
    assert {r: report["processes"][r]["alive"] for r in ("fetcher", "processor", "notifier")} == \
        {"fetcher": True, "processor": True, "notifier": True}
    assert report["fetcher"]["last_cycle_ago"] == 200 and report["fetcher"]["next_poll_in"] == 100
    # Leaderboard order (the fetcher's `monitored` list), the pause judged against the snapshot's time.
    assert [(p["nickname"], p["paused"]) for p in report["predictors"]] == [("GoalGuru_88", False), ("Tactico.ES", True)]
    assert report["streams"]["group"]["lag"] == 7 and report["queue"]["failed"] == 0
    assert report["alerts"]["by_state"] == {"pending": 4, "sent": 12}
    assert report["alerts"]["waiting"] == 4 and report["alerts"]["stuck"] is False
    assert report["webhooks"] == {"main": {"broken": False, "fingerprint": None, "failing": None},
                                  "health": {"broken": False, "fingerprint": None, "failing": None}}
    text = render(report)
    assert "healthy" in text and "UNHEALTHY" not in text
    assert "3.2 MiB" in text and "3 min ago" in text and "PAUSED until" in text and "1,234 entries" in text
    assert "pending 3, lag 7" in text and "failed 0," in text and "3 in the last hour, 12 in the last day" in text
    assert "main ok, health ok" in text and "4, the oldest for 2 min" in text and "STUCK" not in text
    assert "(handled=42, pending=0, lag=0)" in text and "next_poll_at" not in text


@pytest.mark.parametrize("beats", [
    [{"name": "fetcher:box:11", "at": NOW - 10}, {"name": "processor:p", "at": NOW - 5}],
    [{"name": "fetcher:box:11", "at": NOW - 10}, {"name": "processor:p", "at": NOW - 5},
     {"name": "notifier:box:13", "at": NOW - ALIVE_SECONDS - 60}],
], ids=["no-notifier-heartbeat", "old-notifier-heartbeat"])
def test_a_stopped_notifier_is_a_named_problem(beats: list[dict[str, Any]]) -> None:
    report = build_report(healthy_snapshot(heartbeats=beats))
    assert report["healthy"] is False
    assert len(report["problems"]) == 1 and "notifier" in report["problems"][0]
    assert report["processes"]["notifier"]["alive"] is False
    assert "no live notifier heartbeat" in render(report)


def test_a_stale_fetch_cycle_is_a_problem_but_a_backoff_alone_is_not() -> None:
    blocked = dict(healthy_snapshot().fetcher_state, backoff_until=repr(NOW + 600), backoff_seconds="240.0",
                   blocked_since=repr(NOW - 1200))
    report = build_report(healthy_snapshot(fetcher_state=blocked))
    assert report["healthy"] is True and report["fetcher"]["upstream"]["blocked"] is True
    assert "BLOCKED until" in render(report) and "backoff 4 min" in render(report)

    stale = dict(blocked, last_cycle_at=repr(NOW - STALE_CYCLE_SECONDS - 60))
    report = build_report(healthy_snapshot(fetcher_state=stale))
    assert report["problems"] == ["the fetcher's last cycle was 46 min ago (limit 45 min)"]
    assert build_report(healthy_snapshot(fetcher_state={}))["problems"] == \
        ["the fetcher has not recorded a completed cycle"]


def test_cycles_without_a_good_answer_are_a_problem() -> None:
    """Sofascore unreachable or blocking for long: cycles complete, yet nothing is fetched."""
    never = dict(healthy_snapshot().fetcher_state, last_success_at="")
    assert build_report(healthy_snapshot(fetcher_state=never))["problems"] == \
        ["no good answer from Sofascore within 45 min (last: never)"]
    old = dict(never, last_success_at=repr(NOW - STALE_CYCLE_SECONDS - 120))
    report = build_report(healthy_snapshot(fetcher_state=old))
    assert report["problems"] == ["no good answer from Sofascore within 45 min (last: 47 min ago)"]
    assert "FAILING" in render(report)


@pytest.mark.parametrize("name, setting", [("main", "DISCORD_WEBHOOK_URL"),
                                           ("health", "DISCORD_HEALTH_WEBHOOK_URL")])
def test_a_broken_webhook_is_a_problem(name: str, setting: str) -> None:
    report = build_report(healthy_snapshot(broken_webhooks={name: "0123456789ab"}))
    assert report["healthy"] is False
    assert report["problems"] == [(f"webhook {name} is broken (Discord answered 401/404);"
                                   f" fix {setting} and restart the notifiers")]
    assert report["webhooks"][name] == {"broken": True, "fingerprint": "0123456789ab", "failing": None}
    text = render(report)
    assert f"{name} BROKEN (url 0123456789ab)" in text and f"  - webhook {name} is broken" in text


def test_alerts_waiting_too_long_are_a_problem() -> None:
    just_in_time = healthy_snapshot(waiting_alerts=3, oldest_waiting_at=NOW - STUCK_ALERT_SECONDS)
    assert build_report(just_in_time)["problems"] == []
    report = build_report(healthy_snapshot(waiting_alerts=3, oldest_waiting_at=NOW - 42 * 60))
    assert report["healthy"] is False
    assert report["problems"] == ["3 alert(s) waiting, the oldest for 42 min"]
    assert report["alerts"]["stuck"] is True and report["alerts"]["oldest_waiting_ago"] == 42 * 60
    text = render(report)
    assert "3, the oldest for 42 min  (STUCK)" in text and "  - 3 alert(s) waiting" in text
    # Nothing waiting: no age to judge.
    assert build_report(healthy_snapshot(waiting_alerts=0, oldest_waiting_at=None))["problems"] == []


def test_failed_delivery_jobs_are_a_problem() -> None:
    snap = healthy_snapshot(queue={"queued": 0, "scheduled": 0, "started": 0, "failed": 2, "workers": 1})
    report = build_report(snap)
    assert report["healthy"] is False
    assert report["problems"] == [("2 failed delivery job(s): see rq-dashboard,"
                                   " requeue with `sofamon requeue`")]
    assert "failed 2  (FAILED)" in render(report)


def test_unreadable_and_missing_fields_are_tolerated() -> None:
    snap = healthy_snapshot(
        heartbeats=[{"name": "fetcher:x", "at": "garbage"}, {"name": "processor:p", "at": NOW},
                    {"name": "notifier:n", "at": NOW}],
        fetcher_state={"last_cycle_at": repr(NOW), "last_success_at": repr(NOW), "monitored": "{not json"},
        monitored={"x": "{not json", "y": json.dumps({"nickname": "Y"})},
        group=None, queue=None, database_size=None,
    )
    report = build_report(snap)
    assert report["problems"] == ["no live fetcher heartbeat (none found)"]
    assert sorted(p["id"] for p in report["predictors"]) == ["x", "y"]
    render(report)  # does not raise


def test_unreachable_redis_is_one_line() -> None:
    report = build_report(healthy_snapshot(redis_error="unreachable: ConnectionError: refused"))
    assert report["healthy"] is False
    assert render(report).splitlines() == ["UNHEALTHY: Redis at redis://127.0.0.1:6379/0 unreachable:"
                                           " ConnectionError: refused"]


def test_human_units() -> None:
    assert [human_bytes(n) for n in (512, 2048, 5 * 1024**2, 3 * 1024**3)] == ["512 B", "2.0 KiB", "5.0 MiB", "3.0 GiB"]
    assert [human_ago(s) for s in (0.2, 12, 180, 7300, 3 * 86400)] == \
        ["just now", "12 s ago", "3 min ago", "2 h 2 min ago", "3 d ago"]


def test_no_dry_run_when_the_webhook_is_configured() -> None:
    report = build_report(healthy_snapshot())
    assert report["dry_run"]["active"] is False and report["dry_run"]["reason"] is None
    assert "DRY RUN" not in render(report)


def test_an_intended_dry_run_is_shown_first_but_is_no_problem() -> None:
    """Issue 9, finding 1: the notifier printed alerts, stored them as `sent`, and status said nothing."""
    snap = healthy_snapshot(webhook_configured={"main": False, "health": False},
                            dry_run_last_hour={"main": 3}, dry_run_last_day={"main": 12, "health": 2},
                            sent_last_hour=0, sent_last_day=0, alerts_by_state={"dry_run": 14, "pending": 4})
    report = build_report(snap)
    assert report["healthy"] is True and report["problems"] == []
    dry = report["dry_run"]
    assert dry["active"] is True and dry["reason"] == "no webhook configured"
    assert dry["webhooks"] == {"main": {"configured": False, "last_hour": 3, "last_day": 12},
                               "health": {"configured": False, "last_hour": 0, "last_day": 2}}
    lines = render(report).splitlines()
    assert lines[0].startswith("sofamon status: healthy, DRY RUN  (")
    assert lines[1] == ("DRY RUN: no webhook configured (DISCORD_WEBHOOK_URL is not set): alerts are printed in the"
                        " notifier's log, not posted; 3 in the last hour, 12 in the last day")
    text = "\n".join(lines)
    assert "main DRY RUN (not configured), health DRY RUN (not configured)" in text
    assert "0 in the last hour, 0 in the last day" in text  # alerts sent: none of the printed ones


def test_a_notifier_running_dry_against_the_configuration_is_a_problem() -> None:
    """The URL is set (here), yet a live notifier started without it: alerts are printed, not posted."""
    beats = [*healthy_snapshot().heartbeats[:2],
             {"name": "notifier:box:13", "at": NOW - 30, "dry_run": ["main", "health"]},
             {"name": "notifier:box:14", "at": NOW - 30, "dry_run": []}]
    report = build_report(healthy_snapshot(heartbeats=beats, dry_run_last_hour={"main": 2}))
    assert report["healthy"] is False
    assert report["dry_run"]["active"] is True and report["dry_run"]["notifiers"] == ["notifier:box:13"]
    assert report["problems"] == ["notifier:box:13 runs dry without DISCORD_WEBHOOK_URL, which is set here:"
                                  " its alerts are printed, not posted (restart the notifiers)"]
    assert render(report).splitlines()[0].startswith("sofamon status: UNHEALTHY, DRY RUN")
    # Every live notifier has the URL: nothing runs dry, whatever old dry-run alerts say.
    beats[2] = {"name": "notifier:box:13", "at": NOW - 30, "dry_run": ["health"]}
    report = build_report(healthy_snapshot(heartbeats=beats, dry_run_last_day={"main": 5}))
    assert report["dry_run"]["active"] is False and report["problems"] == []


@pytest.fixture
def paris(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_status_times_carry_their_zone(paris: None) -> None:
    """Issue 9, finding 11: `18:04:05` alone is ambiguous on a server in another zone than its operator."""
    assert local_clock(NOW) == "13:00:00 CET" and local_stamp(NOW) == "2026-11-22 13:00:00 CET"
    blocked = dict(healthy_snapshot().fetcher_state, backoff_until=repr(NOW + 600), backoff_seconds="240.0")
    text = render(build_report(healthy_snapshot(fetcher_state=blocked)))
    assert "(2026-11-22 13:00:00 CET)" in text.splitlines()[0]
    assert "BLOCKED until 13:10:00 CET" in text and "PAUSED until 13:10:00 CET" in text


# -- the command -----------------------------------------------------------------------------------


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, redis_url: str, db: Database,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings in the environment too, for `sofamon.cli.main`."""
    settings = make_settings(database_url=database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    return settings


def everything_running(conn: redis.Redis, settings: Settings, db: Database, *, notifier: bool = True) -> None:
    keys = Keys.of(settings)
    now = time.time()
    timeout = heartbeat.Timing.of(settings).timeout
    heartbeat.beat(conn, keys, "fetcher:box:101", timeout=timeout)
    heartbeat.beat(conn, keys, "processor:processor-box", timeout=timeout, handled=5, pending=0, lag=0)
    if notifier:
        heartbeat.beat(conn, keys, "notifier:box:103", timeout=timeout)
    conn.hset(keys.fetcher_state, mapping={
        "last_cycle_at": repr(now - 120), "last_success_at": repr(now - 120), "next_poll_at": repr(now + 180), "leaderboard_at": repr(now - 600),
        "backoff_until": repr(now + 300), "backoff_seconds": "120.0", "blocked_since": repr(now - 400),
        "monitored": json.dumps([GURU]),
    })
    conn.hset(keys.monitored, mapping={
        GURU: json.dumps({"nickname": "GoalGuru_88", "last_fetch": now - 120, "strikes": 0, "paused_until": None,
                          "last_status": "ok"}),
        TACTICO: json.dumps({"nickname": "Tactico.ES", "last_fetch": now - 4000, "paused_until": now + 900}),
    })
    usage.record(conn, keys, {"predictions": 30, "odds": 12, "leaderboard": 2}, now)
    usage.record(conn, keys, {"predictions": 30}, now - 1800)
    usage.record(conn, keys, {"predictions": 99}, now - 3700)  # more than an hour ago: not counted
    conn.xadd(keys.fetched, {"kind": "health", "subject": "x", "fetched_at": "1", "payload": "{}"})
    conn.xgroup_create(keys.fetched, "processor", id="0")
    with db.tx() as tx:
        sent = outbox.insert(tx, HealthAlert(title="t", message="m"), webhook="health", created_at=now - 60)
        pending = outbox.insert(tx, HealthAlert(title="t", message="m"), webhook="health", created_at=now)
    outbox.mark_sent(db, [sent], "msg-1", now - 30)
    queue = Queue(ALERTS_QUEUE, connection=conn)
    assert enqueue_alert(queue, pending, retry_intervals=settings.notifier_retry_intervals)


def test_status_of_a_healthy_pipeline_exits_0(settings: Settings, redis_conn: redis.Redis, db: Database,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    everything_running(redis_conn, settings, db)
    # A notifier's job lingers as the main webhook's drain (notifier/lingering.py): said, not a problem.
    redis_conn.set(Keys.of(settings).drain_owner("main"), "notifier:box:103|t", px=30_000)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "sofamon status: healthy" in out
    assert "(1 lingering as a webhook's drain)" in out
    for expected in ("fetcher:box:101", "processor:processor-box", "notifier:box:103", "2 min ago", "BLOCKED until",
                     "GoalGuru_88", "PAUSED until", "1 entries", "lag 1", "queued 1", "failed 0",
                     "1 in the last hour, 1 in the last day", "pending 1, sent 1",
                     "74 (predictions 60, odds 12, leaderboard 2); budget 60/min: 2.1% used, busiest minute 44"):
        assert expected in out, expected
    assert "KiB" in out or "MiB" in out
    assert out.rstrip().endswith("problems\n  none")


@pytest.mark.parametrize("stopped", ["gone", "old"])
def test_a_stopped_notifier_exits_1_and_is_named(stopped: str, settings: Settings, redis_conn: redis.Redis,
                                                 db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    everything_running(redis_conn, settings, db, notifier=False)
    if stopped == "old":
        # Stopped two minutes ago: its heartbeat has not expired from Redis yet, but it is too old.
        keys = Keys.of(settings)
        redis_conn.set(keys.heartbeat("notifier:box:103"),
                       json.dumps({"name": "notifier:box:103", "at": time.time() - 120}), ex=300)
    assert main(["status"]) == 1
    out = capsys.readouterr().out
    assert "sofamon status: UNHEALTHY" in out
    expected = "no live notifier heartbeat (last seen 2 min ago)" if stopped == "old" \
        else "no live notifier heartbeat (none found)"
    assert f"  - {expected}" in out


def test_status_json_has_the_sections(settings: Settings, redis_conn: redis.Redis, db: Database,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    everything_running(redis_conn, settings, db)
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"] is True and report["problems"] == []
    for section in ("redis", "processes", "fetcher", "predictors", "streams", "queue", "alerts", "database"):
        assert report[section] is not None, section
    assert report["queue"]["queued"] == 1 and report["queue"]["failed"] == 0
    assert report["streams"]["fetched"]["length"] == 1 and report["streams"]["group"]["lag"] == 1
    assert report["alerts"]["sent_last_hour"] == 1 and report["alerts"]["by_state"] == {"pending": 1, "sent": 1}
    assert report["fetcher"]["upstream"]["blocked"] is True
    assert report["fetcher"]["requests"] == {"last_hour": 74, "by_kind": {"predictions": 60, "odds": 12,
                                             "leaderboard": 2}, "busiest_minute": 44, "budget_per_minute": 60,
                                             "budget_used_pct": 2.1}
    assert [p["nickname"] for p in report["predictors"]] == ["GoalGuru_88", "Tactico.ES"]
    assert report["database"]["size_bytes"] > 0


def test_status_reads_and_never_writes(settings: Settings, redis_conn: redis.Redis, db: Database) -> None:
    everything_running(redis_conn, settings, db)
    before = {k: redis_conn.dump(k) for k in redis_conn.keys("*")}
    main(["status"])
    assert {k: redis_conn.dump(k) for k in redis_conn.keys("*")} == before


def test_gather_sees_a_broken_webhook_and_an_old_pending_alert(settings: Settings, redis_conn: redis.Redis,
                                                                db: Database) -> None:
    everything_running(redis_conn, settings, db)
    redis_conn.set(Keys.of(settings).webhook_broken("main"), "0123456789ab")
    with db.tx() as tx:
        outbox.insert(tx, HealthAlert(title="t", message="m"), webhook="main", created_at=time.time() - 3600)
    snap = gather(settings)
    assert snap.broken_webhooks == {"main": "0123456789ab"}
    assert snap.waiting_alerts == 2 and snap.oldest_waiting_at is not None
    report = build_report(snap)
    assert report["healthy"] is False
    assert report["problems"] == [
        "webhook main is broken (Discord answered 401/404); fix DISCORD_WEBHOOK_URL and restart the notifiers",
        "2 alert(s) waiting, the oldest for 60 min",
    ]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_redis_exits_1_with_one_line(sqlite_url: str) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "REDIS_URL": f"redis://:hunter2@127.0.0.1:{closed_port()}/0", "DATABASE_URL": sqlite_url}
    Database(sqlite_url).migrate()
    result = subprocess.run([sys.executable, "-m", "sofamon.cli", "status"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("UNHEALTHY: Redis at redis://127.0.0.1:")
    assert "unreachable" in lines[0] and "hunter2" not in result.stdout


def test_unreachable_database_exits_1_and_is_named(make_settings: Callable[..., Settings], redis_conn: redis.Redis,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/test")
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert main(["status", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["database"]["reachable"] is False
    assert any(p.startswith("database unavailable (postgresql)") for p in report["problems"])


def test_status_says_the_notifier_ran_dry(settings: Settings, redis_conn: redis.Redis, db: Database,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 9, finding 1, end to end: a notifier without a webhook URL prints alerts; they are `dry_run`,
    not `sent`, and status says it runs dry and why."""
    from notifier.main import run as notify
    from tests.test_notifier import insert_alerts

    everything_running(redis_conn, settings, db)
    ids = insert_alerts(db, 2)
    queue = Queue(ALERTS_QUEUE, connection=redis_conn)
    for alert_id in ids:
        assert enqueue_alert(queue, alert_id, retry_intervals=[])
    assert notify(settings, burst=True) == 0
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"]["active"] is True and report["dry_run"]["reason"] == "no webhook configured"
    assert report["dry_run"]["webhooks"]["main"] == {"configured": False, "last_hour": 2, "last_day": 2}
    assert report["alerts"]["sent_last_hour"] == 1  # the one everything_running marked sent
    assert report["alerts"]["by_state"]["dry_run"] >= 2 and report["alerts"]["by_state"]["sent"] == 1
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sofamon status: healthy, DRY RUN")
    assert "DRY RUN: no webhook configured (DISCORD_WEBHOOK_URL is not set)" in out


def test_a_notifier_heartbeat_says_which_webhooks_run_dry(make_settings: Callable[..., Settings],
                                                          redis_conn: redis.Redis) -> None:
    from notifier import context, liveness

    settings = make_settings(discord_webhook_url="https://discord.com/api/webhooks/1/tok")
    ctx = context.create(settings, conn=redis_conn)
    try:
        liveness.beat(ctx)
        [beat] = heartbeat.read_all(redis_conn, Keys.of(settings))
        assert beat["dry_run"] == ["health"]
    finally:
        ctx.db.close()


def test_failing_webhooks_and_possible_duplicates_are_shown() -> None:
    failing = {"main": {"attempts": 3, "since": NOW - 300, "last_at": NOW - 10, "last_status": 403,
                        "last_error": "HTTP 403: not Discord's answer (HTML page)"}}
    duplicates = {"timeout": {"kind": "timeout", "times": 2, "alerts": 7, "last_at": NOW - 3600}}
    report = build_report(healthy_snapshot(failing_webhooks=failing, possible_duplicates=duplicates))
    assert report["webhooks"]["main"]["failing"]["attempts"] == 3
    assert report["alerts"]["possible_duplicates"]["timeout"]["alerts"] == 7
    text = render(report)
    assert "main FAILING (3 attempt(s) since 5 min ago, last: HTTP 403" in text
    assert "maybe posted twice  timeout 2x (7 alert(s), last 60 min ago)" in text
    assert "maybe posted twice  none" in render(build_report(healthy_snapshot()))
