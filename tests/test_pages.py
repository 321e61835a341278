"""Every tip, exactly once: deep pages and deferred tips, through the fake Sofascore, the real fetcher and
processor, real Redis and both databases."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from fetcher.client import SofascoreClient
from fetcher.cycle import Fetcher
from processor.main import Processor
from processor.replay import Selection, dry_run
from shared.keys import Keys
from shared.models import FetchRecord
from shared.redisconn import connect
from shared.settings import Settings
from shared.storage import Database
from tests import test_fetcher
from tests.fakes.sofascore import REF_NOW, FakeSofascore
from tests.test_fetcher import Clock

PUNTER = "7a7a7a7a7a7a7a7a7a7a7a7a"
HOUR = 3600
DAY = 24 * HOUR
NOT_STARTED = {"code": 0, "description": "Not started", "type": "notstarted"}
FINISHED = {"code": 100, "description": "Ended", "type": "finished"}
POSTPONED = {"code": 60, "description": "Postponed", "type": "postponed"}

make_settings = test_fetcher.make_settings  # each test runs with each HTTP client


def tip(n: int, start: float, status: dict[str, Any] | None = None) -> dict[str, Any]:
    """Tip number `n`, alone on its own match (event 20000000 + n)."""
    return {
        "id": f"7b{n:022x}", "customId": f"cu{n}", "eventId": 20_000_000 + n, "eventSlug": f"home-{n}-away-{n}",
        "sportSlug": "football", "homeTeamName": f"Home {n}", "awayTeamName": f"Away {n}",
        "startDateTimestamp": int(start), "status": dict(status or NOT_STARTED), "vote": "1", "voteType": 1,
        "odds": {"decimalValue": "2.00", "fractionalValue": "1/1"},
    }


def tips(numbers: range, start: float, status: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Newest first, as Sofascore lists them: the highest number on top."""
    return [tip(n, start + n * 60, status) for n in reversed(numbers)]


@pytest.fixture
def fake() -> Iterator[FakeSofascore]:
    # Served timestamps are the authored ones (no shift): the test moves the fetcher's and processor's clock.
    with FakeSofascore(clock=lambda: REF_NOW) as server:
        server.set_feed(PUNTER, [])
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock(REF_NOW)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], fake: FakeSofascore, database_url: str,
             redis_url: str) -> Settings:
    # Only PUNTER is polled (the leaderboard is read, nobody on it is selected).
    return make_settings(sofascore_base_url=fake.base_url, database_url=database_url, top_predictors_limit=0,
                         target_users=PUNTER, time_lookahead_hours=24)


@pytest.fixture
def fetcher(settings: Settings, redis_conn: redis.Redis, clock: Clock) -> Iterator[Fetcher]:
    with SofascoreClient(settings) as client:
        fetcher = Fetcher(settings, redis_conn, client, clock=clock)
        fetcher.load_state()
        yield fetcher


@pytest.fixture
def process(settings: Settings, redis_conn: redis.Redis, database: Database, clock: Clock) -> Callable[[], None]:
    def run() -> None:
        assert Processor(settings, redis_conn, database, name="p", clock=clock).run(burst=True) == 0
    return run


def page_hits(fake: FakeSofascore, uid: str = PUNTER, pages: int = 8) -> list[int]:
    """Requests for each page of a predictor's tips so far."""
    return [fake.hits(f"/user-account/{uid}/predictions?page={page}") for page in range(pages)]


def new_tip_events(db: Database) -> list[int]:
    """The event of every new-tip alert, one entry per tip announced (a match with two tips counts twice)."""
    with db.tx() as tx:
        rows = tx.all("SELECT event_id, payload FROM alerts WHERE kind = 'new_tip' ORDER BY id")
    return sorted(event for event, payload in rows for _ in json.loads(payload)["tips"])


def events(numbers: range | list[int]) -> list[int]:
    return sorted(20_000_000 + n for n in numbers)


# -- pagination -------------------------------------------------------------------------------------


def test_45_upcoming_tips_on_three_pages_are_all_alerted_once(
        fake: FakeSofascore, fetcher: Fetcher, process: Callable[[], None], database: Database,
        clock: Clock) -> None:
    fake.set_feed(PUNTER, tips(range(45), REF_NOW + HOUR))
    fetcher.run_cycle()
    assert page_hits(fake) == [1, 1, 1, 0, 0, 0, 0, 0]  # the third page says there is no next one
    process()
    assert new_tip_events(database) == events(range(45))

    # The next poll finds nothing new on page 0: one request, nothing alerted again.
    clock.advance(300)
    fetcher.run_cycle()
    assert page_hits(fake) == [2, 1, 1, 0, 0, 0, 0, 0]
    process()
    assert new_tip_events(database) == events(range(45))


def test_25_new_tips_between_two_polls_spanning_two_pages_are_all_alerted(
        fake: FakeSofascore, fetcher: Fetcher, process: Callable[[], None], database: Database,
        clock: Clock) -> None:
    # 20 upcoming tips on top of 40 on finished matches: a first poll stops at the page of finished ones.
    fake.set_feed(PUNTER, tips(range(20), REF_NOW + HOUR) + tips(range(1000, 1040), REF_NOW - 5 * DAY, FINISHED))
    fetcher.run_cycle()
    assert page_hits(fake) == [1, 1, 0, 0, 0, 0, 0, 0]
    process()
    assert new_tip_events(database) == events(range(20))

    clock.advance(300)
    fake.post(PUNTER, *reversed(tips(range(100, 125), REF_NOW + 2 * HOUR)))
    fetcher.run_cycle()
    # Page 0: 20 new; page 1: 5 new above 15 known; page 2: nothing new, so no page 3 (the feed has 5).
    assert page_hits(fake) == [2, 2, 1, 0, 0, 0, 0, 0]
    process()
    assert new_tip_events(database) == events(list(range(20)) + list(range(100, 125)))


def test_during_a_redis_outage_the_fetcher_reads_as_deep_from_what_it_remembers(
        fake: FakeSofascore, settings: Settings, fetcher: Fetcher, process: Callable[[], None], database: Database,
        clock: Clock, redis_conn: redis.Redis) -> None:
    fake.set_feed(PUNTER, tips(range(20), REF_NOW + HOUR) + tips(range(1000, 1040), REF_NOW - 5 * DAY, FINISHED))
    fetcher.run_cycle()
    fetcher.conn = connect(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))  # Redis goes away
    clock.advance(300)
    fake.post(PUNTER, *reversed(tips(range(100, 125), REF_NOW + 2 * HOUR)))
    fetcher.run_cycle()
    assert page_hits(fake) == [2, 2, 1, 0, 0, 0, 0, 0]
    assert fetcher.pending == 3  # the three pages, kept until Redis is back

    fetcher.conn = redis_conn
    clock.advance(300)
    fetcher.run_cycle()
    assert page_hits(fake) == [3, 2, 1, 0, 0, 0, 0, 0] and fetcher.pending == 0
    process()
    assert new_tip_events(database) == events(list(range(20)) + list(range(100, 125)))


def test_a_predictor_with_nothing_upcoming_costs_one_request(
        fake: FakeSofascore, fetcher: Fetcher, clock: Clock) -> None:
    fake.set_feed(PUNTER, tips(range(60), REF_NOW - 5 * DAY, FINISHED))
    fetcher.run_cycle()
    clock.advance(300)
    fetcher.run_cycle()
    assert page_hits(fake) == [2, 0, 0, 0, 0, 0, 0, 0]


def test_the_safety_bound_stops_a_poll_with_one_log_line(
        fake: FakeSofascore, fetcher: Fetcher, process: Callable[[], None], database: Database,
        caplog: pytest.LogCaptureFixture) -> None:
    fake.set_feed(PUNTER, tips(range(140), REF_NOW + HOUR))  # 7 pages, all new
    with caplog.at_level(logging.INFO, logger="fetcher"):
        fetcher.run_cycle()
    assert page_hits(fake) == [1, 1, 1, 1, 1, 0, 0, 0]  # PREDICTION_MAX_PAGES defaults to 5
    lines = [r.getMessage() for r in caplog.records if "PREDICTION_MAX_PAGES" in r.getMessage()]
    assert lines == [f"predictions for {PUNTER}: page 4 still brought new tips and PREDICTION_MAX_PAGES (5)"
                     " is reached; tips on later pages are not read"]
    process()
    assert new_tip_events(database) == events(range(40, 140))


# -- deferred tips --------------------------------------------------------------------------------------

FAR = 0  # tip 0: a match three days ahead, beyond the 24 h look-ahead when it is posted
FAR_EVENT = 20_000_000 + FAR


def deferred_far_tip_pushed_to_page_3(fake: FakeSofascore, fetcher: Fetcher, process: Callable[[], None],
                                      database: Database, clock: Clock) -> None:
    """Tip 0 is seen and stored deferred; then 60 newer tips (ten days ahead) push it to page 3."""
    older = tips(range(1000, 1030), REF_NOW - 5 * DAY, FINISHED)
    fake.set_feed(PUNTER, [tip(FAR, REF_NOW + 3 * DAY)] + older)
    fetcher.run_cycle()
    assert page_hits(fake) == [1, 1, 0, 0, 0, 0, 0, 0]  # page 1: finished matches only
    process()
    assert new_tip_events(database) == []  # beyond the look-ahead: stored, not alerted

    clock.advance(HOUR)
    fake.post(PUNTER, *reversed(tips(range(1, 61), REF_NOW + 10 * DAY)))
    fetcher.run_cycle()
    # Pages 0-2: 60 new; page 3 starts with tip 0, already known: nothing new, no page 4.
    assert page_hits(fake) == [2, 2, 1, 1, 0, 0, 0, 0]
    assert fake.feeds[PUNTER][60]["eventId"] == FAR_EVENT
    process()
    assert new_tip_events(database) == []


def test_a_deferred_tip_fallen_to_page_3_is_alerted_once_after_an_event_refresh(
        fake: FakeSofascore, fetcher: Fetcher, process: Callable[[], None], database: Database,
        clock: Clock) -> None:
    deferred_far_tip_pushed_to_page_3(fake, fetcher, process, database, clock)

    clock.now = REF_NOW + 3 * DAY - 12 * HOUR  # its match is now 12 h ahead
    fetcher.run_cycle()
    assert page_hits(fake) == [3, 2, 1, 1, 0, 0, 0, 0]  # page 0 brought nothing new
    assert fake.hits(f"/event/{FAR_EVENT}") == 1
    process()
    assert new_tip_events(database) == [FAR_EVENT]

    clock.advance(300)
    fetcher.run_cycle()
    process()
    assert fake.hits(f"/event/{FAR_EVENT}") == 1  # alerted: no longer waiting, no further refresh
    assert new_tip_events(database) == [FAR_EVENT]


def test_replay_dry_run_alerts_a_deferred_tip_from_its_event_entry(
        fake: FakeSofascore, fetcher: Fetcher, process: Callable[[], None], database: Database, clock: Clock,
        settings: Settings, redis_conn: redis.Redis) -> None:
    deferred_far_tip_pushed_to_page_3(fake, fetcher, process, database, clock)
    clock.now = REF_NOW + 3 * DAY - 12 * HOUR
    fetcher.run_cycle()
    result = dry_run(redis_conn, settings, Selection())
    assert result.selected["event"] == 1 and not result.unparseable and not result.errors
    assert [(a.kind, a.event_id) for a in result.alerts] == [("new_tip", FAR_EVENT)]
    event_entry = [entry_id.decode() for entry_id, fields in redis_conn.xrange(Keys.of(settings).fetched)
                   if fields[b"kind"] == b"event"]
    assert [a.entry_id for a in result.alerts] == event_entry


def test_a_deferred_tip_whose_match_was_postponed_is_not_alerted(
        fake: FakeSofascore, fetcher: Fetcher, process: Callable[[], None], database: Database,
        clock: Clock) -> None:
    deferred_far_tip_pushed_to_page_3(fake, fetcher, process, database, clock)
    fake.update_event(FAR_EVENT, status=POSTPONED)

    clock.now = REF_NOW + 3 * DAY - 12 * HOUR
    fetcher.run_cycle()
    assert fake.hits(f"/event/{FAR_EVENT}") == 1
    process()
    clock.advance(300)
    fetcher.run_cycle()
    process()
    assert fake.hits(f"/event/{FAR_EVENT}") == 1  # no longer waiting
    assert new_tip_events(database) == []


def test_a_moved_kick_off_is_honoured(
        fake: FakeSofascore, fetcher: Fetcher, process: Callable[[], None], database: Database,
        clock: Clock) -> None:
    deferred_far_tip_pushed_to_page_3(fake, fetcher, process, database, clock)
    moved = REF_NOW + 5 * DAY
    fake.update_event(FAR_EVENT, startDateTimestamp=moved)

    clock.now = REF_NOW + 3 * DAY - 12 * HOUR  # due by the kick-off stored; the refresh says two days later
    fetcher.run_cycle()
    process()
    assert new_tip_events(database) == []
    clock.advance(300)
    fetcher.run_cycle()
    assert fake.hits(f"/event/{FAR_EVENT}") == 1  # it waits for the new kick-off

    clock.now = moved - 2 * HOUR
    fetcher.run_cycle()
    process()
    assert fake.hits(f"/event/{FAR_EVENT}") == 2
    assert new_tip_events(database) == [FAR_EVENT]
    with database.tx() as tx:
        payload = json.loads(tx.one("SELECT payload FROM alerts WHERE event_id = ?", (FAR_EVENT,))[0])
    assert payload["match"]["start_ts"] == moved


# -- deleted before it alerted -----------------------------------------------------------------------------


def test_a_deferred_tip_deleted_by_its_predictor_is_not_alerted(
        fake: FakeSofascore, fetcher: Fetcher, process: Callable[[], None], database: Database,
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    fake.set_feed(PUNTER, [tip(FAR, REF_NOW + 3 * DAY)] + tips(range(1000, 1030), REF_NOW - 5 * DAY, FINISHED))
    fetcher.run_cycle()
    process()
    fake.delete_tip(PUNTER, tip(FAR, 0)["id"])

    clock.advance(HOUR)
    fetcher.run_cycle()  # page 0 now starts with the finished tip that was right below it
    with caplog.at_level(logging.INFO, logger="processor"):
        process()
    assert any(f"(event {FAR_EVENT}) is gone" in r.getMessage() for r in caplog.records)

    clock.now = REF_NOW + 3 * DAY - 12 * HOUR
    fetcher.run_cycle()
    process()
    assert fake.hits(f"/event/{FAR_EVENT}") == 0  # no longer waiting: not even refreshed
    assert new_tip_events(database) == []


def test_a_deleted_tip_that_ended_a_one_page_list_is_not_alerted(
        fake: FakeSofascore, fetcher: Fetcher, process: Callable[[], None], database: Database,
        clock: Clock) -> None:
    fake.set_feed(PUNTER, tips(range(1, 3), REF_NOW + 10 * DAY) + [tip(FAR, REF_NOW + 3 * DAY)])
    fetcher.run_cycle()
    process()
    fake.delete_tip(PUNTER, tip(FAR, 0)["id"])
    clock.advance(HOUR)
    fetcher.run_cycle()  # the two tips that were above it, and "hasNextPage": false
    process()
    clock.now = REF_NOW + 3 * DAY - 12 * HOUR
    fetcher.run_cycle()
    process()
    assert fake.hits(f"/event/{FAR_EVENT}") == 0
    assert new_tip_events(database) == []


def test_a_deletion_is_judged_by_fetch_time_whatever_order_entries_come_in(
        settings: Settings, redis_conn: redis.Redis, database: Database, process: Callable[[], None]) -> None:
    keys = Keys.of(settings)
    above, far, below = tip(1, REF_NOW + 10 * DAY), tip(FAR, REF_NOW + 3 * DAY), tip(2, REF_NOW + 10 * DAY)

    def page(at: float, *tips_: dict[str, Any], event: bool = False) -> None:
        payload = {"event": {"id": FAR_EVENT, "status": NOT_STARTED, "startTimestamp": far["startDateTimestamp"]}}
        record = (FetchRecord(kind="event", subject=str(FAR_EVENT), fetched_at=at, payload=json.dumps(payload))
                  if event else FetchRecord(kind="predictions", subject=PUNTER, fetched_at=at,
                                            payload=json.dumps({"predictions": list(tips_), "hasNextPage": True})))
        redis_conn.xadd(keys.fetched, record.to_fields())

    member = f"{FAR_EVENT}:{PUNTER}:{far['id']}"
    page(REF_NOW + 100, above, far, below)
    page(REF_NOW + 50, above, below)  # fetched before the sighting above (a late re-read): proves nothing
    process()
    assert redis_conn.zscore(keys.deferred_tips, member) is not None
    page(REF_NOW + 200, above, below)  # fetched after it: deleted
    process()
    assert redis_conn.zscore(keys.deferred_tips, member) is None
    page(REF_NOW + 300, above, far, below)  # yet here it is again: deferred again
    process()
    assert redis_conn.zscore(keys.deferred_tips, member) is not None
    page(far["startDateTimestamp"] - HOUR, event=True)
    process()
    assert new_tip_events(database) == [FAR_EVENT]
