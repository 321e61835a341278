"""Settling an alerted tip whose match left the pages read: through the fake Sofascore, the real fetcher and
processor, on both databases (shared/unsettled.py has the rule)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from fetcher.client import SofascoreClient
from fetcher.cycle import Fetcher
from fetcher.paging import PageView, dig_verdict
from processor.main import Processor
from shared import unsettled
from shared.settings import Settings
from shared.storage import Database
from tests.fakes.sofascore import REF_NOW, FakeSofascore, load_fixture
from tests.test_fetcher import Clock

GURU = "6a1f0c2e9b3d4e5f60718293"
EVENT = 15_990_123
KICKOFF = int(REF_NOW) + 3600


def tip(tip_id: str, event_id: int, start: int, **fields: Any) -> dict[str, Any]:
    template = load_fixture(f"user-{GURU}-page0.json")["predictions"][0]
    return {**template, "id": tip_id, "eventId": event_id, "customId": f"c{event_id}", "startDateTimestamp": start,
            "vote": "1", "voteType": 1, "odds": {"decimalValue": "2.20", "fractionalValue": "6/5"}, **fields}


@pytest.fixture
def fake() -> Iterator[FakeSofascore]:
    with FakeSofascore(clock=lambda: REF_NOW) as server:  # timestamps served as in the fixtures
        yield server


@pytest.fixture
def world(make_settings: Callable[..., Settings], database_url: str, fake: FakeSofascore,
          redis_conn: redis.Redis) -> Iterator[tuple[Settings, Clock, Fetcher, Database]]:
    """GoalGuru followed alone by a real fetcher and processor on one clock (tests/test_scorecard_pipeline.py
    takes it too); the test gives them their tips."""
    settings = make_settings(database_url=database_url, sofascore_base_url=fake.base_url, top_predictors_limit=0,
                             target_users=[GURU])
    clock = Clock(REF_NOW)
    client = SofascoreClient(settings)
    fetcher = Fetcher(settings, redis_conn, client, clock=clock)
    fetcher.load_state()
    db = Database(settings.database_url)
    db.migrate()
    yield settings, clock, fetcher, db
    client.close()
    db.close()


def process(settings: Settings, conn: redis.Redis, db: Database, clock: Clock) -> None:
    assert Processor(settings, conn, db, name="p1", clock=clock).run(burst=True) == 0


def result(db: Database) -> str | None:
    with db.read() as tx:
        row = tx.one("SELECT result FROM tips WHERE event_id = ?", (EVENT,))
    assert row is not None
    return row[0]


def test_a_tip_pushed_off_page_0_is_settled_once_its_match_is_over(
        world: tuple[Settings, Clock, Fetcher, Database], fake: FakeSofascore, redis_conn: redis.Redis) -> None:
    settings, clock, fetcher, db = world
    fake.set_feed(GURU, [tip("the-tip", EVENT, KICKOFF)])
    fetcher.run_cycle()
    process(settings, redis_conn, db, clock)
    with db.read() as tx:
        assert tx.one("SELECT COUNT(*) FROM alerts WHERE kind = 'new_tip'") == (1,)

    # Four hours after kick-off the match is still on (extra time, a delay), and 25 newer tips on matches already
    # over pushed the tip to page 1: the match is asked for, the pages are not read for it yet.
    clock.advance(KICKOFF + 4 * 3600 - REF_NOW)
    over = int(REF_NOW) - 86_400
    fake.post(GURU, *(tip(f"newer-{n}", 16_000_000 + n, over, status={"code": 100, "type": "finished"}, correct=1)
                      for n in range(25)))
    fake.update_event(EVENT, status={"code": 7, "description": "2nd half", "type": "inprogress"})
    process(settings, redis_conn, db, clock)  # the minute's sync: the open tip for the fetcher
    fetcher.run_cycle()
    process(settings, redis_conn, db, clock)
    assert (fake.hits(f"/event/{EVENT}"), fake.hits(f"/user-account/{GURU}/predictions?page=1")) == (1, 0)
    assert result(db) is None

    # Not asked again before RETRY_SECONDS; then the match is over: page 1 is read and settles the tip.
    clock.advance(600)
    fetcher.run_cycle()
    assert fake.hits(f"/event/{EVENT}") == 1
    fake.update_event(EVENT, status={"code": 100, "description": "Ended", "type": "finished"}, correct=1)
    clock.advance(unsettled.RETRY_SECONDS)
    process(settings, redis_conn, db, clock)
    fetcher.run_cycle()
    process(settings, redis_conn, db, clock)
    assert (fake.hits(f"/event/{EVENT}"), fake.hits(f"/user-account/{GURU}/predictions?page=1")) == (2, 1)
    assert result(db) == "won"

    # Settled: never asked for again.
    clock.advance(unsettled.RETRY_SECONDS)
    process(settings, redis_conn, db, clock)
    fetcher.run_cycle()
    assert fake.hits(f"/event/{EVENT}") == 2


def test_a_tip_never_seen_again_stays_open_and_is_given_up(
        world: tuple[Settings, Clock, Fetcher, Database], fake: FakeSofascore, redis_conn: redis.Redis) -> None:
    settings, clock, fetcher, db = world
    fake.set_feed(GURU, [tip("the-tip", EVENT, KICKOFF)])
    fetcher.run_cycle()
    process(settings, redis_conn, db, clock)
    fake.update_event(EVENT, status={"code": 100, "description": "Ended", "type": "finished"}, correct=0)
    fake.delete_tip(GURU, "the-tip")  # deleted by its predictor after it alerted: no page shows its verdict
    fake.events[EVENT] = {"id": EVENT, "status": {"code": 100, "type": "finished"}, "startTimestamp": KICKOFF}
    clock.advance(KICKOFF + 4 * 3600 - REF_NOW)
    process(settings, redis_conn, db, clock)
    fetcher.run_cycle()
    process(settings, redis_conn, db, clock)
    assert fake.hits(f"/event/{EVENT}") == 1 and result(db) is None  # never guessed from the match alone

    clock.advance(unsettled.GIVE_UP_SECONDS)
    process(settings, redis_conn, db, clock)
    fetcher.run_cycle()
    assert fake.hits(f"/event/{EVENT}") == 1 and result(db) is None
    assert redis_conn.zrange(fetcher.keys.unsettled, 0, -1) == []


def test_digging_stops_at_the_page_with_the_match_the_last_page_or_the_bound() -> None:
    def view(events: set[int], has_next: bool | None = True) -> PageView:
        return PageView([f"k{e}" for e in events], {}, has_next, frozenset(events))

    assert dig_verdict(view({1, 2}), 1, EVENT, max_pages=5) == "next"
    assert dig_verdict(view({1, EVENT}), 1, EVENT, max_pages=5) == "done"  # found: its page settles it
    assert dig_verdict(view({1, 2}, has_next=None), 1, EVENT, max_pages=5) == "done"
    assert dig_verdict(view(set()), 1, EVENT, max_pages=5) == "done"
    assert dig_verdict(view({1, 2}), 4, EVENT, max_pages=5) == "bound"
    assert dig_verdict(None, 1, EVENT, max_pages=5) == "done"  # not a page of tips
