"""The notifier end to end against the fake Discord: outbox -> RQ job -> webhook.

Every test runs `notifier.main.run(settings, burst=True)` in-process (or the job itself)
with real Redis and both databases; the fake's small buckets can only be learnt from headers.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import socket
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from pydantic import SecretStr
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

import notifier.deliver
import notifier.main
from notifier import context, health, jobqueue, sweeper
from notifier.deliver import deliver_alert
from notifier.lock import WebhookLock
from notifier.main import run
from notifier.webhooks import broken_webhooks, failing_webhooks, fingerprint
from shared import heartbeat, outbox
from shared.alerts import MatchInfo, NewTipAlert, PredictorInfo, StatsSummary, TipLine
from shared.jobs import alerts_queue, enqueue_alert
from shared.keys import Keys
from shared.settings import Settings
from shared.storage import Database
from tests.commandcount import CommandCounter
from tests.fakes.discord import DEFAULT_WEBHOOK_TOKEN, FakeDiscord

RETRY_INTERVALS = (0, 1)
# Short notifier timings for tests (the NOTIFIER_* settings).
TIMINGS: dict[str, Any] = {"notifier_retry_intervals": list(RETRY_INTERVALS), "notifier_lease_seconds": 5,
                           "notifier_lock_ttl": 5, "notifier_http_timeout": 2.0,
                           "notifier_health_throttle_seconds": 60}
HEALTH_TOKEN = "tok-HEALTH-secret-xyz"
ALERT_ID = re.compile(r"alert #(\d+)")


# -- helpers (also used by test_notifier_procs) ------------------------------------------------------------
def beat_elsewhere(conn: redis.Redis, keys: Keys, name: str, *, timeout: float = 30.0, host: str | None = None,
                   pid: int = 999_999) -> None:
    """A heartbeat as a process on another machine writes it: this hostname unless told, a pid that means nothing
    here, another boot id and pid namespace."""
    heartbeat.beat(conn, keys, name, timeout=timeout)
    body = json.loads(conn.get(keys.heartbeat(name)))
    body.update(host=host or socket.gethostname(), pid=pid, machine="another-boot/4026531999", started=12345)
    conn.set(keys.heartbeat(name), json.dumps(body), keepttl=True)


def make_alert(i: int, nickname: str | None = None) -> NewTipAlert:
    return NewTipAlert(
        predictor=PredictorInfo(id=f"p{i % 7}", nickname=nickname or f"Predictor {i % 7}",
                                all_time=StatsSummary(total=200, win_rate=56.0, yield_pct=8.5, profit=17.0,
                                                      avg_odds=2.05),
                                current=StatsSummary(total=12, win_rate=50.0, yield_pct=-3.0, profit=-0.36,
                                                     avg_odds=1.9)),
        match=MatchInfo(event_id=10_000 + i, home=f"Home {i}", away=f"Away {i}", sport_slug="football",
                        event_slug=f"home-{i}-away-{i}", custom_id=f"c{i}", start_ts=1_900_000_000 + i),
        tips=[TipLine(market="Full time", pick=f"Home {i} to win", odds=1.5 + i % 10 / 10)],
    )


def insert_alerts(db: Database, n: int, webhook: str = "main", nickname: str | None = None) -> list[int]:
    ids = []
    for i in range(n):
        with db.tx() as tx:
            ids.append(outbox.insert(tx, make_alert(i, nickname), webhook=webhook, created_at=time.time()))
    return ids


def enqueue(conn: redis.Redis, ids: list[int], intervals: tuple[int, ...] = RETRY_INTERVALS) -> None:
    queue = alerts_queue(conn)
    for alert_id in ids:
        assert enqueue_alert(queue, alert_id, retry_intervals=intervals)


def delivered_ids(fake: FakeDiscord, webhook_id: str = "111") -> list[int]:
    """Alert ids in the order the fake accepted them (from each embed's footer)."""
    return [int(ALERT_ID.search(e["footer"]["text"]).group(1))  # type: ignore[union-attr]
            for m in fake.accepted if m["webhook_id"] == webhook_id for e in m["payload"]["embeds"]]


def states(db: Database, webhook: str | None = None) -> dict[int, tuple[str, str | None, str | None]]:
    """id -> (state, message_id, error)."""
    with db.tx() as tx:
        if webhook:
            rows = tx.all("SELECT id, state, message_id, error FROM alerts WHERE webhook = ? ORDER BY id", (webhook,))
        else:
            rows = tx.all("SELECT id, state, message_id, error FROM alerts ORDER BY id")
    return {int(r[0]): (r[1], r[2], r[3]) for r in rows}


def health_rows(db: Database) -> list[str]:
    with db.tx() as tx:
        rows = tx.all("SELECT payload FROM alerts WHERE webhook = 'health' ORDER BY id")
    return [r[0] for r in rows]


def redis_dump(conn: redis.Redis) -> list[bytes]:
    """Every value in the Redis db (decompressed where RQ compresses), for secret scans."""
    values: list[bytes] = []
    for key in conn.scan_iter(count=1000):
        values.append(key)
        kind = conn.type(key).decode()
        if kind == "string":
            values.append(conn.get(key) or b"")
        elif kind == "hash":
            for field, value in conn.hgetall(key).items():
                values += [field, value]
        elif kind == "list":
            values += conn.lrange(key, 0, -1)
        elif kind == "set":
            values += list(conn.smembers(key))
        elif kind == "zset":
            values += [m for m, _ in conn.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for _, entry in conn.xrange(key):
                for field, value in entry.items():
                    values += [field, value]
    expanded = []
    for value in values:
        expanded.append(value)
        for decode in (lambda v: zlib.decompress(v), lambda v: zlib.decompress(base64.b64decode(v))):
            try:
                expanded.append(decode(value))
            except Exception:  # noqa: BLE001 - most values are not compressed
                pass
    return expanded


@pytest.fixture
def raw_logs(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Log records as emitted, before the redacting filter could mask anything."""
    real = notifier.main.setup_logging

    def setup(settings: Settings, name: str) -> logging.Logger:
        logger = real(settings, name)
        logging.getLogger().handlers.insert(0, caplog.handler)
        return logger

    monkeypatch.setattr(notifier.main, "setup_logging", setup)
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord(webhooks={"111": DEFAULT_WEBHOOK_TOKEN, "999": HEALTH_TOKEN}, bucket_limit=3,
                     bucket_window=1.0, channel_per_minute=None) as server:
        yield server


@pytest.fixture
def settings_for(make_settings: Callable[..., Settings], database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"database_url": database_url, "discord_messages_per_minute": 1000, **TIMINGS}
        values.update(overrides)
        return make_settings(**values)

    return make


def run_burst(settings: Settings) -> None:
    assert run(settings, burst=True) == 0


# -- delivery -----------------------------------------------------------------------------------------
def test_burst_delivers_each_alert_once_oldest_first(fake: FakeDiscord, settings_for: Callable[..., Settings],
                                                    db: Database, redis_conn: redis.Redis) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))
    ids = insert_alerts(db, 45)
    enqueue(redis_conn, ids)
    started = time.monotonic()
    run_burst(settings)

    assert delivered_ids(fake) == ids  # each exactly once, oldest first
    assert fake.count_429 == 0
    # 45 alerts in 5 messages; a bucket of 3 per second had to be learnt and waited for.
    assert len(fake.accepted) == 5 and time.monotonic() - started >= 0.9
    message_of = {aid: m["message_id"] for m in fake.accepted
                  for aid in (int(ALERT_ID.search(e["footer"]["text"]).group(1)) for e in m["payload"]["embeds"])}
    assert states(db) == {aid: ("sent", message_of[aid], None) for aid in ids}
    bucket = redis_conn.hgetall(Keys.of(settings).bucket("main"))
    assert bucket[b"limit"] == b"3" and bucket[b"bucket"]
    assert alerts_queue(redis_conn).count == 0


def test_a_backlog_runs_one_job_and_costs_few_redis_commands_per_alert(
        fake: FakeDiscord, settings_for: Callable[..., Settings], db: Database, redis_conn: redis.Redis,
        redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """30 alerts wait, each with its job. The first job sends them all, ten to a message, and drops the jobs of
    each message's other alerts while they wait: none of them runs (each would cost RQ 48 Redis commands)."""
    settings = settings_for(discord_webhook_url=fake.url("111"))
    ids = insert_alerts(db, 30)
    enqueue(redis_conn, ids)
    ran: list[int] = []
    deliver = notifier.deliver.deliver_alert

    def counted(alert_id: int) -> str:
        ran.append(alert_id)
        return deliver(alert_id)

    monkeypatch.setattr(notifier.deliver, "deliver_alert", counted)  # what RQ imports by name for each job
    with CommandCounter(redis_url) as counter:
        run_burst(settings)
        commands = counter.stop()
    assert delivered_ids(fake) == ids  # each once, oldest first
    assert len(fake.accepted) == 3
    assert ran == [ids[0]]
    assert alerts_queue(redis_conn).count == 0 and not redis_conn.keys("rq:job:*")
    # The whole burst, start-up included: about 6 per alert here (59 when each job ran).
    assert sum(commands.values()) / len(ids) <= 15, commands


def test_a_failure_after_the_jobs_own_alert_leaves_the_rest_to_their_jobs(
        fake: FakeDiscord, settings_for: Callable[..., Settings], db: Database, redis_conn: redis.Redis,
        raw_logs: pytest.LogCaptureFixture) -> None:
    """The first job's own alert went out in the first message; the next message fails: that job ends without
    a retry of its own (nothing of its own is left), and the jobs of the alerts given back deliver them."""
    settings = settings_for(discord_webhook_url=fake.url("111"))
    ids = insert_alerts(db, 15)
    enqueue(redis_conn, ids, intervals=(5,))  # a retry would take 5 s: none is needed
    fake.timeout_next(1, delay=0.0)  # the first message goes through as usual...
    fake.fail_next(1, 500)  # ...the second does not
    started = time.monotonic()
    run_burst(settings)
    assert fake.responses == [200, 500, 200]
    assert delivered_ids(fake) == ids
    assert time.monotonic() - started < 4
    assert FailedJobRegistry(queue=alerts_queue(redis_conn)).count == 0
    assert any(f"alerts {ids[10]}..{ids[14]} (5) not delivered: " in r.getMessage()
               and r.getMessage().endswith("left to their own jobs") for r in raw_logs.records)


def test_job_for_an_already_sent_alert_sends_nothing(fake: FakeDiscord, settings_for: Callable[..., Settings],
                                                     db: Database, redis_conn: redis.Redis) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))
    ids = insert_alerts(db, 3)
    enqueue(redis_conn, ids)
    run_burst(settings)
    assert len(fake.accepted) == 1
    enqueue(redis_conn, ids)  # the finished jobs are gone: new jobs for the same, sent, alerts
    run_burst(settings)
    assert len(fake.accepted) == 1 and fake.responses == [200]


def test_enqueueing_an_existing_job_id_runs_it_once(fake: FakeDiscord, settings_for: Callable[..., Settings],
                                                    db: Database, redis_conn: redis.Redis) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))
    [alert_id] = insert_alerts(db, 1)
    queue = alerts_queue(redis_conn)
    assert enqueue_alert(queue, alert_id, retry_intervals=(0,)) is True
    assert enqueue_alert(queue, alert_id, retry_intervals=(0,)) is False
    assert queue.count == 1
    run_burst(settings)
    assert delivered_ids(fake) == [alert_id]
    assert fake.responses == [200]


def test_dry_run_prints_and_marks_dry_run(settings_for: Callable[..., Settings], db: Database,
                                       redis_conn: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for()  # no webhook URL at all
    ids = insert_alerts(db, 3)
    enqueue(redis_conn, ids)
    run_burst(settings)
    out = capsys.readouterr().out
    for i, alert_id in enumerate(ids):
        assert f"[alert #{alert_id}] [NEW TIP] Home {i} vs Away {i}" in out
    assert out.index(f"[alert #{ids[0]}]") < out.index(f"[alert #{ids[2]}]")
    # Printed is not sent (issue 9, finding 1): a state of its own, which status counts apart.
    assert states(db) == {aid: ("dry_run", None, None) for aid in ids}


# -- Discord's answers ------------------------------------------------------------------------------------
def test_429_is_waited_out_not_a_failure(fake: FakeDiscord, settings_for: Callable[..., Settings], db: Database,
                                         redis_conn: redis.Redis, raw_logs: pytest.LogCaptureFixture) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))
    ids = insert_alerts(db, 3)
    enqueue(redis_conn, ids, intervals=())  # no retry at all: a 429 must not need one
    fake.fail_next(1, 429, retry_after=0.5)
    started = time.monotonic()
    run_burst(settings)
    assert fake.responses == [429, 200]
    assert time.monotonic() - started >= 0.5
    assert delivered_ids(fake) == ids
    assert all(state == "sent" for state, _, _ in states(db).values())
    assert FailedJobRegistry(queue=alerts_queue(redis_conn)).count == 0
    assert any("1 rate-limit answers (429)" in r.getMessage() for r in raw_logs.records)


def test_5xx_storm_is_retried_until_discord_recovers(fake: FakeDiscord, settings_for: Callable[..., Settings],
                                                     db: Database, redis_conn: redis.Redis) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))
    [alert_id] = insert_alerts(db, 1)
    enqueue(redis_conn, [alert_id], intervals=(0, 2))
    fake.fail_next(2, 503)  # the first attempt and the immediate retry fail
    started = time.monotonic()
    run_burst(settings)
    assert fake.responses == [503, 503, 200]
    # The last retry was scheduled 2 s later (RQ's scheduler works in whole seconds): the burst waited for it.
    assert time.monotonic() - started >= 0.95
    assert delivered_ids(fake) == [alert_id]
    assert states(db)[alert_id][0] == "sent"
    assert FailedJobRegistry(queue=alerts_queue(redis_conn)).count == 0


def test_several_jobs_during_a_storm_keep_the_order(fake: FakeDiscord, settings_for: Callable[..., Settings],
                                                   db: Database, redis_conn: redis.Redis) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))
    ids = insert_alerts(db, 5)
    enqueue(redis_conn, ids, intervals=(0, 0, 0))
    fake.fail_next(4, 500)
    run_burst(settings)
    assert delivered_ids(fake) == ids
    assert fake.responses.count(200) == 1


def test_after_the_last_retry_the_job_is_failed_and_the_alert_pending(
        fake: FakeDiscord, settings_for: Callable[..., Settings], db: Database, redis_conn: redis.Redis,
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))  # no health URL: health alerts are printed
    [alert_id] = insert_alerts(db, 1)
    enqueue(redis_conn, [alert_id], intervals=(0, 0))
    fake.fail_next(100, 502)
    run_burst(settings)
    assert fake.responses == [502, 502, 502]
    registry = FailedJobRegistry(queue=alerts_queue(redis_conn))
    assert registry.get_job_ids() == [f"alert-{alert_id}"]
    result = Job.fetch(f"alert-{alert_id}", connection=redis_conn).latest_result()
    assert result is not None and "DeliveryError" in result.exc_string and "HTTP 502" in result.exc_string
    assert states(db)[alert_id][0] == "pending" and "HTTP 502" in (states(db)[alert_id][2] or "")
    # One (throttled) health alert says so; it went to the dry run since no health URL is set.
    [payload] = health_rows(db)
    assert "Delivery to 'main' failing" in payload
    assert "[HEALTH ERROR] Delivery to 'main' failing" in capsys.readouterr().out


def test_a_timeout_is_retried(fake: FakeDiscord, settings_for: Callable[..., Settings], db: Database,
                              redis_conn: redis.Redis) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))
    ids = insert_alerts(db, 3)
    enqueue(redis_conn, ids, intervals=(0,))
    fake.timeout_next(1, delay=1.0)
    run_burst(settings.model_copy(update={"notifier_http_timeout": 0.3}))
    # Discord posted the first message although its answer came too late: the retry posts it again
    # (the documented duplicate window of timeouts); every alert ends up sent.
    assert delivered_ids(fake) == ids + ids
    assert all(state == "sent" for state, _, _ in states(db).values())
    assert FailedJobRegistry(queue=alerts_queue(redis_conn)).count == 0
    # Counted, so `sofamon status` can say how often it happened.
    [doubt] = outbox.possible_duplicates(db).values()
    assert (doubt.kind, doubt.times, doubt.alerts) == (outbox.TIMED_OUT, 1, 3)


# -- one line per failed attempt ----------------------------------------------------------------------------
def test_a_5xx_storm_logs_one_line_per_attempt_and_no_traceback(
        fake: FakeDiscord, settings_for: Callable[..., Settings], db: Database, redis_conn: redis.Redis,
        capfd: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))
    ids = insert_alerts(db, 3)
    enqueue(redis_conn, ids, intervals=(0, 1))
    fake.fail_next(100, 500)
    run_burst(settings)
    err = capfd.readouterr().err
    assert fake.responses and set(fake.responses) == {500}
    assert "Traceback" not in err and "exception raised while executing" not in err
    attempts = [line for line in err.splitlines() if "not delivered" in line]
    assert len(attempts) == len(fake.responses)  # one line per attempt...
    # ... with the reason and what happens next.
    assert all("webhook main: alerts 1..3 (3) not delivered: HTTP 500: 500: Internal Server Error; " in line
               for line in attempts)
    assert attempts[0].endswith("; retry 1 of 2 in 0 s")
    assert any(line.endswith("; retry 2 of 2 in 1 s") for line in attempts)
    assert attempts[-1].endswith("; no retry left: the job goes to RQ's failed registry, the alerts stay pending")
    assert all(state == "pending" for state, _, _ in states(db, "main").values())


# -- only Discord's verdicts mean broken -------------------------------------------------------------------
def test_a_cloudflare_403_page_is_retried_and_reported_not_broken(
        fake: FakeDiscord, settings_for: Callable[..., Settings], db: Database, redis_conn: redis.Redis,
        capfd: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))  # health alerts are printed (dry run)
    ids = insert_alerts(db, 3)
    enqueue(redis_conn, ids, intervals=(0, 1))
    fake.edge_block_next(1, 403)  # Cloudflare blocks the first request, then lets requests through
    run_burst(settings)
    assert fake.responses == [403, 200]
    assert delivered_ids(fake) == ids  # delivered by the retry, nothing to do by hand
    assert all(state == "sent" for state, _, _ in states(db, "main").values())
    keys = Keys.of(settings)
    assert broken_webhooks(redis_conn, keys) == {} and failing_webhooks(redis_conn, keys) == {}
    out, err = capfd.readouterr()
    assert "not delivered: HTTP 403, not from Discord (HTML page: Attention Required! | Cloudflare); retry 1" in err
    # Reported on the health webhook at once (throttled), not only after the last retry.
    [payload] = health_rows(db)
    assert "'main' refused by something in front of Discord" in payload
    assert "[HEALTH WARNING] Discord webhook 'main' refused by something in front of Discord" in out


def test_answers_not_from_discord_are_counted_for_status(
        fake: FakeDiscord, settings_for: Callable[..., Settings], db: Database, redis_conn: redis.Redis) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))
    ids = insert_alerts(db, 2)
    enqueue(redis_conn, ids, intervals=())  # two jobs, tried once each
    fake.edge_block_next(2, 403)
    run_burst(settings)
    keys = Keys.of(settings)
    assert broken_webhooks(redis_conn, keys) == {}  # not broken: its alerts wait for the retries
    failing = failing_webhooks(redis_conn, keys)["main"]
    assert failing.attempts == 2 and failing.last_status == 403
    assert failing.last_error == "HTTP 403, not from Discord (HTML page: Attention Required! | Cloudflare)"
    assert failing.since <= failing.last_at <= time.time()
    assert all(state == "pending" for state, _, _ in states(db, "main").values())
    # Once Discord answers again, the webhook is no longer failing.
    more = insert_alerts(db, 1)
    enqueue(redis_conn, more, intervals=(0,))
    run_burst(settings)
    assert delivered_ids(fake) == ids + more
    assert failing_webhooks(redis_conn, keys) == {}


@pytest.mark.parametrize("status", [401, 404])
def test_broken_webhook_waits_for_a_new_url(fake: FakeDiscord, settings_for: Callable[..., Settings], db: Database,
                                            redis_conn: redis.Redis, status: int) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"), discord_health_webhook_url=fake.url("999"))
    ids = insert_alerts(db, 5)
    enqueue(redis_conn, ids)
    fake.set_broken("111", status)
    run_burst(settings)
    assert fake.responses.count(status) == 1  # one request found it broken; no retries against it
    assert all(state == "pending" for state, _, _ in states(db, "main").values())
    keys = Keys.of(settings)
    assert redis_conn.get(keys.webhook_broken("main")) == fingerprint(fake.url("111")).encode()
    [health_embed] = [e for m in fake.accepted if m["webhook_id"] == "999" for e in m["payload"]["embeds"]]
    assert "broken" in health_embed["title"] and str(status) in health_embed["description"]
    assert FailedJobRegistry(queue=alerts_queue(redis_conn)).count == 0

    # Restarted with the same URL: still nothing is sent to it.
    run_burst(settings)
    assert fake.responses.count(status) == 1 and len(health_rows(db)) == 1

    # A new URL: the mark is cleared at start and the pending alerts go out, in order.
    fake.add_webhook("222", "tok-NEW-abc")
    run_burst(settings_for(discord_webhook_url=fake.url("222"), discord_health_webhook_url=fake.url("999")))
    assert delivered_ids(fake, "222") == ids
    assert redis_conn.get(keys.webhook_broken("main")) is None
    assert all(state == "sent" for state, _, _ in states(db, "main").values())


def test_invalid_alert_is_failed_and_the_others_delivered(fake: FakeDiscord, settings_for: Callable[..., Settings],
                                                          db: Database, redis_conn: redis.Redis,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"))
    ids = insert_alerts(db, 5)
    bad = ids[2]
    real_render = notifier.deliver.render

    def render(alert: Any, *, alert_id: int, created_at: float) -> dict:
        embed = real_render(alert, alert_id=alert_id, created_at=created_at)
        if alert_id == bad:
            embed["fields"][0]["value"] = "v" * 1500  # over Discord's 1024: refused with 400
        return embed

    monkeypatch.setattr(notifier.deliver, "render", render)
    enqueue(redis_conn, ids)
    run_burst(settings)
    assert delivered_ids(fake) == [i for i in ids if i != bad]
    assert fake.count_400 == 2  # the message of five, then the bad alert alone
    final = states(db)
    assert final[bad][0] == "failed"
    assert "50035" in (final[bad][2] or "") and "embeds.0.fields.0.value" in (final[bad][2] or "")
    assert all(final[i][0] == "sent" for i in ids if i != bad)
    assert FailedJobRegistry(queue=alerts_queue(redis_conn)).count == 0


def test_channel_limit_is_waited_for_without_429(settings_for: Callable[..., Settings], db: Database,
                                                 redis_conn: redis.Redis) -> None:
    """Discord does not announce the ~30/minute channel limit; the notifier must keep to it itself."""
    with FakeDiscord(bucket_limit=50, bucket_window=1.0, channel_per_minute=2) as fake:
        settings = settings_for(discord_webhook_url=fake.url("111"), discord_messages_per_minute=2)
        ids = insert_alerts(db, 25)  # three messages of up to ten
        ctx = context.create(settings, db=Database(settings.database_url), conn=redis_conn)
        context.install(ctx)
        results: list[str] = []
        job = threading.Thread(target=lambda: results.append(deliver_alert(ids[-1])))
        try:
            job.start()
            deadline = time.monotonic() + 10
            while len(fake.accepted) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(fake.accepted) == 2
            job.join(timeout=1.5)  # it is waiting for the minute to pass, not asking Discord
            assert job.is_alive() and len(fake.accepted) == 2 and fake.count_429 == 0
            assert fake.responses == [200, 200]
        finally:
            ctx.stopping.set()
            job.join(timeout=5)
            context.reset()
            ctx.db.close()
    assert results == ["stopping"]
    assert delivered_ids(fake) == ids[:20]
    assert [s for s, _, _ in states(db).values()].count("pending") == 5


# -- secrets ----------------------------------------------------------------------------------------------
def test_webhook_token_never_reaches_logs_redis_or_jobs(fake: FakeDiscord, settings_for: Callable[..., Settings],
                                                        db: Database, redis_conn: redis.Redis,
                                                        raw_logs: pytest.LogCaptureFixture,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(discord_webhook_url=fake.url("111"), discord_health_webhook_url=fake.url("999"),
                            log_level="DEBUG")
    first = insert_alerts(db, 1)
    enqueue(redis_conn, first, intervals=(0,))
    fake.fail_next(1, 429, retry_after=0.2)
    fake.fail_next(2, 500)  # the job and its only retry: it ends in the failed registry
    run_burst(settings)
    assert fake.responses[:3] == [429, 500, 500]  # then the health alert about it
    fake.timeout_next(1, delay=0.6)
    more = insert_alerts(db, 12)
    enqueue(redis_conn, more, intervals=(0,))
    run_burst(settings.model_copy(update={"notifier_http_timeout": 0.2}))
    fake.set_broken("111", 401)
    last = insert_alerts(db, 1)
    enqueue(redis_conn, last, intervals=(0,))
    run_burst(settings)
    # Nobody listens there: requests' connection errors name the URL.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/api/webhooks/333/{DEFAULT_WEBHOOK_TOKEN}"
    unreachable = insert_alerts(db, 1)
    enqueue(redis_conn, unreachable, intervals=(0,))
    run_burst(settings.model_copy(update={"discord_webhook_url": SecretStr(closed)}))
    assert states(db)[unreachable[0]][2] == "connection error"

    # The scenario really went through 429, 5xx, failed job, timeout and 401.
    assert {429, 500, 401, 200} <= set(fake.responses)
    assert FailedJobRegistry(queue=alerts_queue(redis_conn)).count >= 1
    tokens = (DEFAULT_WEBHOOK_TOKEN, HEALTH_TOKEN)
    messages = [r.getMessage() for r in raw_logs.records]
    assert messages and any("rate-limit" in m for m in messages)
    for token in tokens:
        assert not any(token in m for m in messages), "token in a log record"
        assert token not in raw_logs.text
        out, err = capfd.readouterr()
        assert token not in out and token not in err
        dump = redis_dump(redis_conn)
        assert any(b"alert-" in v for v in dump)  # the scan sees RQ's job records ...
        assert any(b"DeliveryError" in v for v in dump)  # ... and their (compressed) failure texts
        assert not any(token.encode() in v for v in dump), "token in Redis"
        with db.tx() as tx:
            for row in tx.all("SELECT payload, COALESCE(error, ''), COALESCE(message_id, '') FROM alerts"):
                assert token not in " ".join(row)


# -- sweeper, lock, health ----------------------------------------------------------------------------------
@pytest.fixture
def ctx(settings_for: Callable[..., Settings], db: Database, redis_conn: redis.Redis) -> Iterator[context.NotifierContext]:
    settings = settings_for(discord_webhook_url="http://127.0.0.1:9/api/webhooks/1/tok-NOT-USED")
    yield context.create(settings, db=db, conn=redis_conn)


def test_sweeper_gives_every_deliverable_alert_a_job(ctx: context.NotifierContext, db: Database,
                                                     redis_conn: redis.Redis) -> None:
    lost, dead, failed, queued, done = insert_alerts(db, 5)
    queue = alerts_queue(redis_conn)
    for alert_id in (dead, failed, queued):
        enqueue_alert(queue, alert_id, retry_intervals=())
    # `dead`: started by a worker that no longer exists (kill -9).
    job = Job.fetch(f"alert-{dead}", connection=redis_conn)
    queue.remove(job)
    job.worker_name = "vanished-worker"
    job.set_status(JobStatus.STARTED)
    job.save()
    Job.fetch(f"alert-{failed}", connection=redis_conn).set_status(JobStatus.FAILED)
    queue.remove(f"alert-{failed}")
    outbox.mark_sent(db, [done], "m1", time.time())

    report = sweeper.sweep(ctx, at_start=True)
    assert report["enqueued"] == 1 and report["replaced"] == 1 and report["failed"] == 1 and report["waiting"] == 1
    assert set(queue.get_job_ids()) == {f"alert-{lost}", f"alert-{dead}", f"alert-{queued}"}
    assert Job.fetch(f"alert-{failed}", connection=redis_conn).get_status() == JobStatus.FAILED
    assert sweeper.sweep(ctx)["enqueued"] == 0  # nothing left to repair


def test_sweeper_releases_alerts_of_a_dead_notifier(ctx: context.NotifierContext, db: Database) -> None:
    ids = insert_alerts(db, 3)
    dead_owner = f"notifier:{socket.gethostname()}:999999"
    assert len(outbox.claim(db, "main", dead_owner, time.time(), 600, 2)) == 2
    report = sweeper.sweep(ctx)
    assert report["released"] == 2
    assert [s for s, _, _ in states(db).values()] == ["pending"] * 3
    assert report["enqueued"] == len(ids)


def test_sweeper_clears_a_broken_mark_of_an_old_url(ctx: context.NotifierContext, redis_conn: redis.Redis,
                                                    db: Database) -> None:
    insert_alerts(db, 2)
    current = ctx.webhook_url("main")
    assert current is not None
    redis_conn.set(ctx.keys.webhook_broken("main"), fingerprint(current))
    assert broken_webhooks(redis_conn, ctx.keys) == {"main": fingerprint(current)}  # what status shows
    assert sweeper.sweep(ctx, at_start=True)["broken"] == 2  # same URL: still broken, no job
    assert alerts_queue(redis_conn).count == 0
    redis_conn.set(ctx.keys.webhook_broken("main"), "0123456789ab")
    report = sweeper.sweep(ctx, at_start=True)
    assert report["cleared_broken"] == 1 and report["enqueued"] == 2
    assert redis_conn.get(ctx.keys.webhook_broken("main")) is None
    assert broken_webhooks(redis_conn, ctx.keys) == {}


def test_health_alerts_are_throttled_per_topic(ctx: context.NotifierContext, db: Database,
                                               redis_conn: redis.Redis) -> None:
    first = health.webhook_broken(ctx, "main", 404, "abc")
    assert first is not None
    assert health.webhook_broken(ctx, "main", 404, "abc") is None
    assert health.notifier_started(ctx) is not None
    assert len(health_rows(db)) == 2
    assert alerts_queue(redis_conn).get_job_ids() == [f"alert-{first}", f"alert-{first + 1}"]
    assert redis_conn.ttl(ctx.keys.health_throttle(health.broken_topic("main"))) > 0


def test_webhook_lock_is_exclusive_and_released_by_its_owner_only(redis_conn: redis.Redis) -> None:
    key = "test:lock:webhook:main"
    first = WebhookLock(redis_conn, key, "notifier:host-a:1", ttl=2)
    second = WebhookLock(redis_conn, key, "notifier:host-b:2", ttl=2)
    assert first.try_acquire()
    assert not second.try_acquire()
    second.release()  # not its lock: nothing happens
    assert redis_conn.get(key) == first.token.encode()
    assert second.take_over_if_dead() is None  # no judge of liveness given: never taken
    first.release()
    assert redis_conn.get(key) is None
    assert second.try_acquire()
    time.sleep(1.0)  # renewed while held (TTL 2 s, renewed every ~0.7 s)
    assert redis_conn.pttl(key) > 1200
    second.release()


def test_a_lock_redis_lost_is_taken_again_by_its_holder(redis_conn: redis.Redis) -> None:
    """Redis restarted without its data while a notifier held a webhook's lock (maybe waiting to record a
    posted message): the holder takes it again at its next renewal, before anyone else can drain the webhook."""
    key = "test:lock:webhook:main"
    holder = WebhookLock(redis_conn, key, "notifier:host-a:1", ttl=1.5)
    assert holder.try_acquire()
    try:
        redis_conn.delete(key)
        deadline = time.monotonic() + 3
        while redis_conn.get(key) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert redis_conn.get(key) == holder.token.encode() and not holder.lost
    finally:
        holder.release()
    assert redis_conn.get(key) is None


def test_lock_of_a_notifier_killed_on_this_machine_is_taken_over_at_once(ctx: context.NotifierContext,
                                                                        redis_conn: redis.Redis) -> None:
    """A process that beat its heartbeat here and ended: its heartbeat has not timed out, but it says it was written
    on this machine by a pid that is gone, so its lock is taken over without waiting."""
    import subprocess
    import sys

    script = ("import sys; from shared import heartbeat, instance; from shared.keys import Keys; import redis; "
              "name = instance.process_name('notifier'); "
              "heartbeat.beat(redis.Redis.from_url(sys.argv[1]), Keys(sys.argv[2]), name, timeout=30); print(name)")
    url = redis_conn.connection_pool.connection_kwargs
    child = subprocess.run([sys.executable, "-c", script, f"redis://{url['host']}:{url['port']}/{url['db']}",
                            ctx.keys.prefix], capture_output=True, text=True, check=True)
    dead = child.stdout.strip()
    assert dead.startswith("notifier:") and redis_conn.exists(ctx.keys.heartbeat(dead))
    key = ctx.keys.webhook_lock("main")
    redis_conn.set(key, f"{dead}|abc")
    me = WebhookLock(redis_conn, key, ctx.owner, ttl=5, dead=ctx.owner_dead)
    assert me.take_over_if_dead() == dead
    assert me.try_acquire()
    me.release()


def test_job_waits_for_the_lock_and_finds_its_alert_done(ctx: context.NotifierContext, db: Database,
                                                         redis_conn: redis.Redis) -> None:
    [alert_id] = insert_alerts(db, 1)
    holder = WebhookLock(redis_conn, ctx.keys.webhook_lock("main"), "notifier:other-host:1", ttl=5)
    beat_elsewhere(redis_conn, ctx.keys, "notifier:other-host:1")  # alive, on another machine
    assert holder.try_acquire()
    context.install(ctx)
    results: list[str] = []
    job = threading.Thread(target=lambda: results.append(deliver_alert(alert_id)))
    try:
        job.start()
        job.join(timeout=0.5)
        assert job.is_alive()  # another notifier is draining this webhook
        outbox.mark_sent(db, [alert_id], "by-the-other", time.time())
        job.join(timeout=5)
        assert results == ["already done"]
    finally:
        ctx.stopping.set()
        holder.release()
        job.join(timeout=5)
        context.reset()


def test_recording_a_sent_message_is_tried_until_it_works(ctx: context.NotifierContext,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Discord accepted a message and the database is away: the notifier keeps the claim and keeps trying
    (here 8 times, longer than any fixed number of tries), with one line when it starts and one when done."""
    calls: list[float] = []

    def mark_sent(db: Database, ids: list[int], message_id: str, at: float, *, owner: str | None = None) -> int:
        calls.append(time.monotonic())
        if len(calls) < 8:
            raise sqlite3.OperationalError("unable to open database file")
        assert owner == ctx.owner  # only while it still holds the claim
        return len(ids)

    monkeypatch.setattr(outbox, "mark_sent", mark_sent)
    monkeypatch.setattr(notifier.deliver, "RECORD_WAIT", (0.01, 0.05))
    caplog.set_level(logging.INFO)
    notifier.deliver._record_sent(ctx, [1, 2], "m1")
    assert len(calls) == 8
    lines = [r.getMessage() for r in caplog.records if "m1" in r.getMessage()]
    assert len(lines) == 2
    assert lines[0] == ("message m1 (alerts 1..2 (2)) posted, but the database is unavailable (OperationalError:"
                        " unable to open database file): keeping the claim, trying again until it is recorded")
    assert lines[1].startswith("message m1 recorded as sent after ")


def test_a_claim_lost_before_recording_is_counted(ctx: context.NotifierContext, db: Database,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The claim of a posted message ran out and another notifier took the alerts: they will be posted twice.
    Nothing is overwritten, and it is logged and counted."""
    ids = insert_alerts(db, 2)
    assert len(outbox.claim(db, "main", "notifier:other:1", time.time(), 60, 10)) == 2
    notifier.deliver._record_sent(ctx, ids, "m2")
    assert [s for s, _, _ in states(db).values()] == ["sending", "sending"]
    assert any("its claim was lost" in r.getMessage() for r in caplog.records)
    [doubt] = outbox.possible_duplicates(db).values()
    assert (doubt.kind, doubt.times, doubt.alerts) == (outbox.CLAIM_LOST, 1, 2)


# -- jobs that crashes and signals leave behind; readable jobs ------------------------------------------------
def test_a_job_stranded_between_dequeue_and_start_is_queued_again(
        fake: FakeDiscord, settings_for: Callable[..., Settings], db: Database, redis_conn: redis.Redis) -> None:
    """SIGTERM during `notify --burst` right after RQ moved a job to its intermediate list: the alert is pending,
    its job says queued but is in no queue. The next notifier's start-up sweep queues it again."""
    settings = settings_for(discord_webhook_url=fake.url("111"))
    [alert_id] = insert_alerts(db, 1)
    queue = alerts_queue(redis_conn)
    enqueue(redis_conn, [alert_id])
    assert redis_conn.lmove(queue.key, queue.intermediate_queue_key) == f"alert-{alert_id}".encode()
    assert Job.fetch(f"alert-{alert_id}", connection=redis_conn).get_status() == JobStatus.QUEUED
    run_burst(settings)
    assert delivered_ids(fake) == [alert_id]
    assert redis_conn.llen(queue.intermediate_queue_key) == 0


def test_dropping_the_waiting_jobs_leaves_a_job_a_worker_took(redis_conn: redis.Redis) -> None:
    queue = alerts_queue(redis_conn)
    for alert_id in (1, 2, 3):
        assert enqueue_alert(queue, alert_id, retry_intervals=())
    assert redis_conn.lmove(queue.key, queue.intermediate_queue_key) == b"alert-1"  # as a worker takes a job
    assert jobqueue.drop_waiting(redis_conn, queue, [1, 2, 3]) == 2
    assert queue.count == 0
    assert redis_conn.exists("rq:job:alert-1") and not redis_conn.exists("rq:job:alert-2", "rq:job:alert-3")


def test_a_sweep_reads_the_queue_once_however_long_the_backlog(ctx: context.NotifierContext, db: Database,
                                                               redis_conn: redis.Redis, redis_url: str) -> None:
    ids = insert_alerts(db, 40)
    enqueue(redis_conn, ids[:-1])  # the last alert lost its job
    with CommandCounter(redis_url) as counter:
        report = sweeper.sweep(ctx)
        commands = counter.stop()
    assert report["waiting"] == 39 and report["enqueued"] == 1
    assert Job.fetch(f"alert-{ids[-1]}", connection=redis_conn).get_status() == JobStatus.QUEUED
    # One snapshot, then the lost job alone (its look and its enqueue): about 15, where each alert took 2 or more.
    assert sum(commands.values()) <= 25, commands


def test_jobs_are_described_by_kind_predictor_and_match(ctx: context.NotifierContext, db: Database,
                                                        redis_conn: redis.Redis) -> None:
    """What rq-dashboard shows for a job: the alert's kind, predictor and match (no URL, no token)."""
    [tip] = insert_alerts(db, 1, nickname="Tipster")
    assert sweeper.sweep(ctx)["enqueued"] == 1
    job = Job.fetch(f"alert-{tip}", connection=redis_conn)
    assert job.description == f"alert {tip}: new_tip predictor=Tipster match=Home 0 vs Away 0 event=10000"
    health_id = health.notifier_started(ctx)
    assert Job.fetch(f"alert-{health_id}", connection=redis_conn).description == \
        f"alert {health_id}: health Notifier started"
    # A caller may describe the alert itself; without a description the job still says which alert it is.
    queue = alerts_queue(redis_conn)
    assert enqueue_alert(queue, 1001, retry_intervals=(), description="line_movement predictor=X\nmatch=A vs B")
    assert Job.fetch("alert-1001", connection=redis_conn).description == \
        "alert 1001: line_movement predictor=X match=A vs B"
    assert enqueue_alert(queue, 1002, retry_intervals=())
    assert Job.fetch("alert-1002", connection=redis_conn).description == "alert 1002"
