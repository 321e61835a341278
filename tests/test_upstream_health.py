"""Sofascore blocking us, as the operator hears of it: the backoff ladder under intermittent 429s, and the
health alerts the processor makes of the fetcher's transitions (at most one of a kind per
NOTIFIER_HEALTH_THROTTLE_SECONDS, shared with the notifier's own health alerts and among processors)."""
from __future__ import annotations

import json
import random
import time
from collections.abc import Callable

import pytest
import redis

from fetcher import streams
from fetcher.client import SofascoreClient
from fetcher.cycle import Fetcher
from processor.main import Processor, throttle_of
from shared.healththrottle import take
from shared.keys import Keys
from shared.models import FetchRecord
from shared.settings import Settings
from shared.storage import Database
from tests.fakes.sofascore import REF_NOW, FakeSofascore
from tests import test_fetcher
from tests.test_fetcher import Clock, of_kind, state

WATCHED = "15981204"

fake = test_fetcher.fake  # the fixture: a fake Sofascore
make_settings = test_fetcher.make_settings  # each test runs with each HTTP client


@pytest.fixture
def settings(make_settings: Callable[..., Settings], fake: FakeSofascore, redis_url: str) -> Settings:
    return make_settings(sofascore_base_url=fake.base_url, http_concurrency=1)


def health_alerts(db: Database) -> list[dict]:
    with db.tx() as tx:
        rows = tx.all("SELECT payload FROM alerts WHERE kind = 'health' ORDER BY id")
    return [json.loads(r[0]) for r in rows]


def process(settings: Settings, conn: redis.Redis, db: Database, name: str = "p1") -> None:
    assert Processor(settings, conn, db, name=name, clock=lambda: REF_NOW).run(burst=True) == 0


def test_intermittent_429s_keep_doubling_the_backoff_and_alert_once(
        fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, database: Database) -> None:
    """One 429 per cycle, every other answer good (the odds of a watched event come last and get the 429):
    the ladder doubles at every cycle instead of starting over at 60 s after each good answer, and the
    operator hears of it once, not at every cycle."""
    redis_conn.zadd(Keys.of(settings).watched_events, {WATCHED: REF_NOW + 86400})
    clock = Clock(REF_NOW)
    rng = random.Random(7)
    ladder = []
    with SofascoreClient(settings) as client:
        fetcher = Fetcher(settings, redis_conn, client, clock=clock)
        fetcher.load_state()
        while clock.now < REF_NOW + 40 * 60:
            fake.set_mode("ratelimit", f"/event/{WATCHED}/", count=1, retry_after=1)
            report = fetcher.run_cycle()
            assert report.written > 0  # good answers, and one 429
            assert fake.count(f"/event/{WATCHED}/") == len(ladder) + 1
            ladder.append(float(state(redis_conn, settings)["backoff_seconds"]))
            clock.advance(fetcher.next_delay(rng))
    assert ladder == [60, 120, 240, 480, 960, 1800]
    process(settings, redis_conn, database)
    assert [a["title"] for a in health_alerts(database)] == ["Sofascore is blocking requests"]


def test_the_backoff_ends_after_30_minutes_of_good_answers(
        fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis) -> None:
    # Within 2 hours of kick-off, so its odds are asked every cycle (the cadence) and can answer 429 again.
    redis_conn.zadd(Keys.of(settings).watched_events, {WATCHED: REF_NOW + 3600})
    clock = Clock(REF_NOW)
    with SofascoreClient(settings) as client:
        fetcher = Fetcher(settings, redis_conn, client, clock=clock)
        fetcher.load_state()
        fake.set_mode("ratelimit", f"/event/{WATCHED}/", count=1, retry_after=1)
        fetcher.run_cycle()
        ended = []
        for minutes in (1, 10, 20, 29, 31):  # good answers only from here on
            clock.now = REF_NOW + minutes * 60
            ended += [t for t in fetcher.run_cycle().transitions if t.kind == "blocked_ended"]
            assert len(ended) == (1 if minutes == 31 else 0), minutes
    assert state(redis_conn, settings)["blocked_since"] == ""
    # Blocked again later: a new ladder, from 60 s.
    with SofascoreClient(settings) as client:
        fetcher = Fetcher(settings, redis_conn, client, clock=clock)
        fetcher.load_state()
        clock.advance(60)
        fake.set_mode("ratelimit", f"/event/{WATCHED}/", count=1, retry_after=1)
        fetcher.run_cycle()
    assert float(state(redis_conn, settings)["backoff_seconds"]) == 60
    assert [r.subject for r in of_kind(redis_conn, settings, "health")] == [
        streams.HEALTH_BLOCKED, streams.HEALTH_RECOVERED, streams.HEALTH_BLOCKED]


def put_transition(conn: redis.Redis, settings: Settings, subject: str, at: float) -> None:
    record = streams.health_record(subject, f"{subject} at {at}", at + 60, at)
    conn.xadd(Keys.of(settings).fetched, record.to_fields())  # type: ignore[arg-type]


def test_health_alerts_of_a_kind_are_throttled_across_processors(
        make_settings: Callable[..., Settings], redis_url: str, redis_conn: redis.Redis) -> None:
    """Blocks that start again and again (a fetcher restarting in a loop, say) make one alert per
    NOTIFIER_HEALTH_THROTTLE_SECONDS, whichever processor handles them; each kind has its own throttle."""
    settings = make_settings(notifier_health_throttle_seconds=2)
    db = Database(settings.database_url)
    db.migrate()
    put_transition(redis_conn, settings, streams.HEALTH_BLOCKED, REF_NOW)
    put_transition(redis_conn, settings, streams.HEALTH_BLOCKED, REF_NOW + 120)
    put_transition(redis_conn, settings, streams.HEALTH_RECOVERED, REF_NOW + 240)
    process(settings, redis_conn, db, "p1")
    put_transition(redis_conn, settings, streams.HEALTH_BLOCKED, REF_NOW + 360)
    process(settings, redis_conn, db, "p2")  # another processor: the same throttle
    assert [a["title"] for a in health_alerts(db)] == ["Sofascore is blocking requests", "Sofascore reachable again"]

    # Once the throttle period is over, the next one is alerted.
    deadline = time.monotonic() + 10
    while take_would_succeed(redis_conn, settings) is False:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    put_transition(redis_conn, settings, streams.HEALTH_BLOCKED, REF_NOW + 480)
    process(settings, redis_conn, db, "p1")
    assert [a["title"] for a in health_alerts(db)] == [
        "Sofascore is blocking requests", "Sofascore reachable again", "Sofascore is blocking requests"]
    db.close()


def take_would_succeed(conn: redis.Redis, settings: Settings) -> bool:
    return not conn.exists(Keys.of(settings).health_throttle("upstream-blocked"))


def test_a_transition_whose_processor_died_after_taking_the_throttle_is_still_alerted(
        make_settings: Callable[..., Settings], redis_url: str, redis_conn: redis.Redis) -> None:
    """The throttle remembers which transition took it: the same entry delivered again is alerted (once)."""
    settings = make_settings()
    db = Database(settings.database_url)
    db.migrate()
    put_transition(redis_conn, settings, streams.HEALTH_BLOCKED, REF_NOW)
    [(_, fields)] = redis_conn.xrange(Keys.of(settings).fetched)
    record = FetchRecord.from_fields(fields)
    # A processor took the throttle for this entry, then died before its commit.
    topic, holder = throttle_of(record)
    assert take(redis_conn, Keys.of(settings), topic, 900, holder=holder)
    process(settings, redis_conn, db)
    assert [a["title"] for a in health_alerts(db)] == ["Sofascore is blocking requests"]
    db.close()
