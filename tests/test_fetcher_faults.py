"""The fetcher when things are not as they should be: no good answer at all (`--once`'s exit status), a
garbled saved state, Redis away for long (the buffer's limit) or refusing writes (OOM, read-only), and
the heartbeats of one-off runs (`fetch --once`, `process --burst`), which are no live process in status."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from fetcher import cycle
from fetcher.client import SofascoreClient
from fetcher.cycle import Fetcher
from fetcher.main import run
from processor.main import Processor
from shared import heartbeat
from shared.keys import Keys
from shared.redisconn import connect
from shared.settings import Settings
from shared.storage import Database
from sofamon.statusrules import build_report
from sofamon.status import gather
from tests import servers, test_fetcher, test_sentinel
from tests.fakes.sofascore import REF_NOW, FakeSofascore
from tests.ownredis import OwnRedis
from tests.ownsentinel import SentinelSet
from tests.test_fetcher import GOAL_GURU, TACTICO, WITH_PAGES, Clock, of_kind, pages_only, ranked_ids, records, state

# Fixtures of the fetcher's tests: its fake Sofascore, and pytest's logging put back after `run()`.
fake = test_fetcher.fake
_restore_root_logging = test_fetcher._restore_root_logging
make_settings = test_fetcher.make_settings  # each test runs with each HTTP client
sentinels = test_sentinel.sentinels  # a master, its replica and a Sentinel of the test's own


@pytest.fixture
def settings(make_settings: Callable[..., Settings], fake: FakeSofascore, redis_url: str) -> Settings:
    return make_settings(sofascore_base_url=fake.base_url)


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "ERROR" in line]


# -- fetch --once: its exit status ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["error", "challenge", "ratelimit"])
def test_once_exits_1_when_no_request_got_a_good_answer(
        fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, capsys: pytest.CaptureFixture[str],
        mode: str) -> None:
    fake.set_mode(mode)  # every request
    assert run(settings, once=True, clock=lambda: REF_NOW) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in error_lines(err) if "no good answer" in line], err
    assert of_kind(redis_conn, settings, "leaderboard") == []


def test_once_exits_1_when_the_upstream_backoff_allows_no_request(
        fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    redis_conn.hset(Keys.of(settings).fetcher_state, mapping={
        "backoff_until": repr(REF_NOW + 600), "backoff_seconds": "120.0", "blocked_since": repr(REF_NOW - 300)})
    assert run(settings, once=True, clock=lambda: REF_NOW) == 1
    assert fake.requests == []
    assert "no good answer" in capsys.readouterr().err


def test_once_exits_0_when_some_answers_were_good(fake: FakeSofascore, settings: Settings,
                                                  redis_conn: redis.Redis) -> None:
    fake.set_mode("error", f"/user-account/{GOAL_GURU}/")
    assert run(settings, once=True, clock=lambda: REF_NOW) == 0
    assert of_kind(redis_conn, settings, "leaderboard") != []


# -- heartbeats of one-off runs ---------------------------------------------------------------------


def test_one_off_heartbeats_are_marked_and_no_live_process_in_status(
        fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis) -> None:
    """`fetch --once` and `process --burst` beat (status shows them), but a dead fetcher or processor
    does not look alive because a one-off run just ended."""
    db = Database(settings.database_url)
    db.migrate()
    assert run(settings, once=True, clock=lambda: REF_NOW) == 0
    assert Processor(settings, redis_conn, db, name="p1", clock=lambda: REF_NOW).run(burst=True) == 0
    db.close()
    beats = {b["name"].split(":")[0]: b for b in heartbeat.read_all(redis_conn, Keys.of(settings))}
    assert beats["fetcher"]["mode"] == "once" and beats["processor"]["mode"] == "burst"

    report = build_report(gather(settings))
    for role in ("fetcher", "processor"):
        assert not report["processes"][role]["alive"]
        assert [i["mode"] for i in report["processes"][role]["instances"]] == [beats[role]["mode"]]
        assert any(p.startswith(f"no live {role} heartbeat") for p in report["problems"]), report["problems"]


# -- a garbled saved state --------------------------------------------------------------------------


GARBLED_OWN = {
    "monitored": "{not json",
    "next_poll_at": "[" * 100_000,
    "last_cycle_at": "yesterday",
    "leaderboard_at": "soon",
    "backoff_until": "later",
    "backoff_seconds": "a lot",
    "blocked_since": "[]",
}
GARBLED_PREDICTORS = {
    GOAL_GURU: json.dumps({"nickname": "GoalGuru_88", "paused_until": "later", "strikes": "two"}),
    TACTICO: json.dumps({"nickname": ["x"], "last_fetch": {"at": 1}, "last_status": 404}),
    "64b2a9d1c3e5f70819a2b3c4": "[1, 2]",
    "0000": "not json at all",
    "1111": "[" * 100_000,  # nested too deep for the JSON reader
}


@pytest.mark.parametrize("case", ["fields", "monitored-list", "not-a-hash"])
def test_a_garbled_saved_state_does_not_stop_the_fetcher(
        fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, capsys: pytest.CaptureFixture[str],
        case: str) -> None:
    keys = Keys.of(settings)
    pages_only(fake)
    if case == "fields":
        redis_conn.hset(keys.fetcher_state, mapping=GARBLED_OWN)
        redis_conn.hset(keys.monitored, mapping=GARBLED_PREDICTORS)
    elif case == "monitored-list":
        redis_conn.hset(keys.fetcher_state, mapping={"monitored": json.dumps([None, {"id": 1}, 5, GOAL_GURU])})
    else:  # the keys hold something else than hashes
        redis_conn.set(keys.fetcher_state, "garbage")
        redis_conn.rpush(keys.monitored, "garbage")

    assert run(settings, once=True, clock=lambda: REF_NOW) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cycle failed" not in err
    # It started afresh: the leaderboard was read and every monitored predictor with a page polled.
    assert len(of_kind(redis_conn, settings, "leaderboard")) == 1
    assert {r.subject for r in of_kind(redis_conn, settings, "predictions")} == WITH_PAGES
    stored = state(redis_conn, settings)
    assert json.loads(stored["monitored"]) == ranked_ids(fake)
    assert stored["backoff_until"] == "" and stored["blocked_since"] == ""
    if case == "fields":
        assert "unreadable" in err
    if case == "not-a-hash":
        assert "not a hash" in err

    # The state it saved reads back whole, in status too.
    report = build_report(gather(settings))
    assert {p["id"] for p in report["predictors"]} == set(ranked_ids(fake))


def test_status_reads_a_garbled_saved_state() -> None:
    from sofamon.statusrules import Snapshot

    snap = Snapshot(now=REF_NOW, redis_url="redis://x", database_dialect="sqlite",
                    fetcher_state=GARBLED_OWN, monitored=GARBLED_PREDICTORS)
    report = build_report(snap)
    rows = {p["id"]: p for p in report["predictors"]}
    assert {pid for pid, row in rows.items() if row["last_status"] == "unreadable state"} == set(GARBLED_PREDICTORS)
    assert report["fetcher"]["upstream"]["blocked"] is False


# -- Redis away for long, or refusing writes ---------------------------------------------------------


def test_dropping_records_past_the_buffer_limit_is_said_once(
        fake: FakeSofascore, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(cycle, "PENDING_MAX", 4)
    gone = connect(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    clock = Clock(REF_NOW)
    with SofascoreClient(settings) as client:
        fetcher = Fetcher(settings, gone, client, clock=clock)
        fetcher.run_cycle()  # the leaderboard and nine pages: six more than the buffer holds
        clock.advance(300)
        fetcher.run_cycle()
    assert fetcher.pending == 4
    dropping = [r for r in caplog.records if "dropping" in r.getMessage()]
    assert len(dropping) == 1 and dropping[0].levelno == logging.ERROR, [r.getMessage() for r in dropping]
    assert "4" in dropping[0].getMessage()


@pytest.mark.parametrize("refusal", ["OOM", "READONLY"])
def test_the_fetcher_keeps_its_records_while_redis_refuses_writes(
        fake: FakeSofascore, make_settings: Callable[..., Settings], tmp_path: Path, refusal: str,
        caplog: pytest.LogCaptureFixture) -> None:
    server = OwnRedis(tmp_path / "redis", persistent=False)
    server.start()
    try:
        settings = make_settings(sofascore_base_url=fake.base_url, redis_url=server.url)
        admin = server.conn()
        if refusal == "OOM":
            admin.config_set("maxmemory", "1")
        else:
            admin.replicaof("127.0.0.1", str(servers.free_port()))
        clock = Clock(REF_NOW)
        with SofascoreClient(settings) as client:
            fetcher = Fetcher(settings, connect(settings), client, clock=clock)
            fetcher.load_state()
            fetcher.run_cycle()
            assert fetcher.pending == 10
            unavailable = [r.getMessage() for r in caplog.records if "Redis unavailable" in r.getMessage()]
            assert len(unavailable) == 1 and refusal in unavailable[0], unavailable
            if refusal == "OOM":
                admin.config_set("maxmemory", "0")
            else:
                admin.replicaof("NO", "ONE")
            clock.advance(300)
            fetcher.run_cycle()
            assert fetcher.pending == 0
        assert len([r for r in records(admin, settings) if r.kind == "predictions"]) == 18
        assert "Traceback" not in caplog.text
    finally:
        server.stop()


def test_the_fetcher_goes_on_through_sentinel_when_the_master_dies(
        fake: FakeSofascore, make_settings: Callable[..., Settings], sentinels: SentinelSet,
        caplog: pytest.LogCaptureFixture) -> None:
    """REDIS_URL through Sentinel: the fetcher's records reach the master the Sentinels name; the master is
    killed between two cycles: the next cycle's records reach the new master, none lost."""
    caplog.set_level(logging.INFO)
    settings = make_settings(sofascore_base_url=fake.base_url, redis_url=sentinels.url(db=2))
    clock = Clock(REF_NOW)
    with SofascoreClient(settings) as client:
        fetcher = Fetcher(settings, connect(settings), client, clock=clock)
        fetcher.load_state()
        fetcher.run_cycle()
        first = len(records(connect(settings), settings))
        assert first > 0 and fetcher.pending == 0
        new = sentinels.kill_master()
        clock.advance(300)
        fetcher.run_cycle()
        assert fetcher.pending == 0
    on_new = new.conn()
    on_new.select(2)
    kept = records(on_new, settings)  # the first cycle's (replicated) and the second's (written to it)
    assert len(kept) > first and {r.fetched_at for r in kept} == {REF_NOW, REF_NOW + 300}
    assert "Traceback" not in caplog.text
    assert len([r for r in caplog.records if "the Sentinels name a new master" in r.getMessage()]) == 1
