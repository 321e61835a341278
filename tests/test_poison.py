"""Poison isolation: a bad item, a bad entry or a failing database never costs the good tips beside or behind it.

Fetched from the local fake Sofascore by the real fetcher and handled by the real processor, on real
Redis and both databases.
"""
from __future__ import annotations

import copy
import json
import logging
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis

from fetcher.client import SofascoreClient
from fetcher.cycle import Fetcher
from processor import deadletters, predictors
from processor.main import Processor
from shared.keys import PROCESSOR_GROUP, Keys
from shared.settings import Settings
from shared.storage import TRANSIENT_ERRORS, Database
from tests import test_fetcher
from tests.fakes.sofascore import REF_NOW, FakeSofascore, load_fixture
from tests.test_fetcher import Clock
from tests.test_processor import FAR_EVENT, FAR_LOOKAHEAD, GURU, TACTICO, alerts, put

POISONED = "7b1c2d3e4f5a6b7c8d9e0f1a"  # a predictor whose page carries every poison item
SOON_EVENT = 15979901
NUL_EVENT = 15990011

make_settings = test_fetcher.make_settings  # each test runs with each HTTP client


def _tip(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    tip = copy.deepcopy(base)
    tip.update(changes)
    return tip


def poisoned_page() -> list[dict[str, Any]]:
    """Good tips with each poison item between them; the NUL one is good once the NUL is removed."""
    guru = {p["id"]: p for p in load_fixture(f"user-{GURU}-page0.json")["predictions"]}
    soon = next(p for p in guru.values() if p["eventId"] == SOON_EVENT)
    far = next(p for p in guru.values() if p["eventId"] == FAR_EVENT and p["vote"] == "1")
    return [
        _tip(soon, id="p-good-soon"),
        _tip(soon, id="p-big-event", eventId=2**63),
        _tip(soon, id="p-nul", eventId=NUL_EVENT, homeTeamName="Kings\x00port Rovers"),
        _tip(soon, id="p-vote-type", eventId=15990012, voteType=10**6),
        _tip(soon, id="x" * 5000, eventId=15990013),
        _tip(soon, id="p-long-vote", eventId=15990014, vote="1" * 5000),
        _tip(far, id="p-good-far"),
    ]


@pytest.fixture
def fake() -> Iterator[FakeSofascore]:
    with FakeSofascore(clock=lambda: REF_NOW) as server:
        server.predictions[POISONED] = {0: poisoned_page()}
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock(REF_NOW)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, redis_url: str,
             fake: FakeSofascore) -> Settings:
    # Only the two targets, one request at a time: the poisoned page is written first, Tactico's behind it.
    return make_settings(database_url=database_url, sofascore_base_url=fake.base_url, top_predictors_limit=0,
                         target_users=f"{POISONED},{TACTICO}", http_concurrency=1,
                         time_lookahead_hours=FAR_LOOKAHEAD, processor_max_deliveries=3)


@pytest.fixture
def fetcher(settings: Settings, redis_conn: redis.Redis, clock: Clock) -> Iterator[Fetcher]:
    client = SofascoreClient(settings)
    fetcher = Fetcher(settings, redis_conn, client, clock=clock)
    fetcher.load_state()
    yield fetcher
    client.close()


def new_tips(db: Database) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r[2], r[3]): json.loads(r[4]) for r in alerts(db) if r[1] == "new_tip"}


def pending(conn: redis.Redis, settings: Settings) -> int:
    return conn.xpending(Keys.of(settings).fetched, PROCESSOR_GROUP)["pending"]


def dead_reasons(conn: redis.Redis, settings: Settings) -> list[str]:
    return [fields[b"reason"].decode() for _id, fields in conn.xrange(Keys.of(settings).dead_letters)]


def test_poison_items_are_left_out_and_the_good_tips_beside_them_alerted_once(
        settings: Settings, redis_conn: redis.Redis, database: Database, fetcher: Fetcher, clock: Clock,
        fake: FakeSofascore, caplog: pytest.LogCaptureFixture) -> None:
    processor = Processor(settings, redis_conn, database, name="p1", clock=clock)
    fetcher.run_cycle()
    with caplog.at_level(logging.WARNING, logger="processor"):
        assert processor.run(burst=True) == 0

    tips = new_tips(database)
    assert set(tips) == {(POISONED, SOON_EVENT), (POISONED, NUL_EVENT), (POISONED, FAR_EVENT),
                         (TACTICO, 15981377)}
    assert tips[(POISONED, NUL_EVENT)]["match"]["home"] == "Kingsport Rovers"  # the NUL removed, the tip kept
    # Nothing dead-lettered, nothing left pending: the entry behind the poisoned one was processed too.
    assert dead_reasons(redis_conn, settings) == [] and pending(redis_conn, settings) == 0

    # One warning per item left out, naming the predictor and the field.
    warned = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(warned) == 4
    assert all(f"predictor {POISONED}" in w for w in warned)
    for field in ("eventId", "voteType", "id", "vote"):
        assert sum(f"].{field}: " in w for w in warned) == 1, field
    assert all(len(w) < 400 for w in warned)  # a multi-kilobyte value is not echoed

    # The next poll of the same page, pushed down by a new tip: nothing alerted twice, nothing said twice.
    caplog.clear()
    clock.advance(300)
    fake.add_prediction(POISONED, _tip(poisoned_page()[0], id="p-new", eventId=15990015))
    fetcher.run_cycle()
    with caplog.at_level(logging.WARNING, logger="processor"):
        assert processor.run(burst=True) == 0
    assert [r[1] for r in alerts(database)].count("new_tip") == 5 and pending(redis_conn, settings) == 0
    assert (POISONED, 15990015) in new_tips(database)
    assert not [r for r in caplog.records if "left out" in r.getMessage()]


def test_data_the_database_refuses_is_dead_lettered_at_once(settings: Settings, redis_conn: redis.Redis,
                                                            database: Database) -> None:
    # A predictor id no index can hold, even compressed (only a hand-made or re-injected entry can carry one).
    huge = secrets.token_urlsafe(6000)
    put(redis_conn, settings, "predictions", huge, load_fixture(f"user-{GURU}-page0.json"))
    put(redis_conn, settings, "predictions", TACTICO, load_fixture(f"user-{TACTICO}-page0.json"))
    processor = Processor(settings, redis_conn, database, name="p1", clock=lambda: REF_NOW)
    assert processor.run(burst=True) == 0
    reasons = dead_reasons(redis_conn, settings)
    if database.dialect == "postgresql":
        # An index row too large: a psycopg OperationalError, yet it never succeeds; not retried.
        assert len(reasons) == 1 and reasons[0].startswith("ProgramLimitExceeded: index row")
        assert {r[2] for r in alerts(database)} == {TACTICO}
    else:  # SQLite has no such limit: the tips are alerted
        assert reasons == [] and {r[2] for r in alerts(database)} == {huge, TACTICO}
    assert pending(redis_conn, settings) == 0


def _transient(database: Database) -> type[Exception]:
    return psycopg.OperationalError if database.dialect == "postgresql" else sqlite3.OperationalError


def test_a_transient_error_repeated_beyond_the_limit_dead_letters_the_entry(
        settings: Settings, redis_conn: redis.Redis, database: Database, fetcher: Fetcher,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real_info = predictors.info
    error = _transient(database)

    def failing(tx: Any, predictor_id: str) -> Any:  # the database answers, yet this predictor's tips fail
        if predictor_id == POISONED:
            raise error("simulated: could not write these tips")
        return real_info(tx, predictor_id)

    monkeypatch.setattr(predictors, "info", failing)
    fetcher.run_cycle()
    processor = Processor(settings, redis_conn, database, name="p1", clock=lambda: REF_NOW)
    with caplog.at_level(logging.ERROR, logger="processor"):
        assert processor.run(burst=True) == 0

    # Tried on 3 deliveries (PROCESSOR_MAX_DELIVERIES), dead-lettered on the 4th; Tactico's entry behind it alerted.
    assert [r.getMessage().count("left pending") for r in caplog.records if r.levelname == "ERROR"] == [1, 1, 1]
    reasons = dead_reasons(redis_conn, settings)
    assert reasons == ["delivered 4 times without being processed; last error: OperationalError: simulated:"
                       " could not write these tips"]
    assert {r[2] for r in alerts(database)} == {TACTICO}
    assert pending(redis_conn, settings) == 0

    # Nothing is lost: once the cause is fixed, the dead letter re-injected alerts its tips.
    monkeypatch.setattr(predictors, "info", real_info)
    assert deadletters.retry_many(redis_conn, Keys.of(settings), [
        i.decode() for i, _ in redis_conn.xrange(Keys.of(settings).dead_letters)])[0].ok
    assert processor.run(burst=True) == 0
    assert {k for k in new_tips(database)} >= {(POISONED, SOON_EVENT), (POISONED, FAR_EVENT)}


def test_an_outage_longer_than_the_limit_dead_letters_nothing(
        settings: Settings, redis_conn: redis.Redis, database: Database) -> None:
    processor = Processor(settings, redis_conn, database, name="p1", clock=lambda: REF_NOW)
    put(redis_conn, settings, "leaderboard", "top", load_fixture("vote-ranking.json"))
    processor.consumer.ensure_group()
    assert processor.step(None) == 1
    entry = put(redis_conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))

    good_url = database.url
    database.close()
    # Away: a PostgreSQL port nobody listens on; for SQLite, a file that cannot be opened (a directory).
    database.url = ("postgresql://postgres@127.0.0.1:1/test" if database.dialect == "postgresql"
                    else f"sqlite:///{database.sqlite_path.rsplit('/', 1)[0]}")
    for _ in range(3 * settings.processor_max_deliveries):
        with pytest.raises(TRANSIENT_ERRORS):
            processor.step(None)
    # Delivered once: while the database is away nothing is read again.
    [row] = redis_conn.xpending_range(Keys.of(settings).fetched, PROCESSOR_GROUP, "-", "+", 10)
    assert row["message_id"].decode() == entry and row["times_delivered"] == 1

    database.url = good_url
    assert processor.run(burst=True) == 0
    assert dead_reasons(redis_conn, settings) == []
    assert sorted(r[3] for r in alerts(database)) == [SOON_EVENT, FAR_EVENT]
    assert pending(redis_conn, settings) == 0


def test_an_entry_a_processor_keeps_dying_on_is_dead_lettered(settings: Settings, redis_conn: redis.Redis,
                                                              database: Database) -> None:
    put(redis_conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    put(redis_conn, settings, "predictions", TACTICO, load_fixture(f"user-{TACTICO}-page0.json"))
    dying = Processor(settings, redis_conn, database, name="p1", clock=lambda: REF_NOW)
    dying.consumer.ensure_group()
    dying.consumer.new(1, None)
    for _ in range(settings.processor_max_deliveries - 1):  # read again after each "restart", never acknowledged
        dying.consumer.own_pending(1)

    restarted = Processor(settings, redis_conn, database, name="p1", clock=lambda: REF_NOW)
    assert restarted.run(burst=True) == 0
    assert dead_reasons(redis_conn, settings) == [
        "delivered 4 times without being processed; last error: none seen by this processor"
        " (one may have died handling it)"]
    assert {r[2] for r in alerts(database)} == {TACTICO}
    assert pending(redis_conn, settings) == 0
