"""The processor against real Redis and both databases: dedup, grouping, movement, dead letters."""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
import redis
from rq import Queue

from processor import dedup, oddshistory, predictors
from processor.commit import COMMIT_SCRIPT
from processor.main import Processor
from processor.movement import Price
from shared import outbox, watch
from shared.keys import ALERTS_QUEUE, PROCESSOR_GROUP, Keys
from shared.models import FetchRecord, PredictionsPage
from shared.prices import parse_fraction
from shared.settings import Settings
from shared.storage import Database
from shared.webhooks import HEALTH_WEBHOOK
from tests.fakes.sofascore import REF_NOW, load_fixture

GURU = "6a1f0c2e9b3d4e5f60718293"
TACTICO = "5e8d7c6b5a4f3e2d1c0b9a87"
FAR_EVENT = 15981204  # GoalGuru's two tips, ~111 days after REF_NOW
FAR_LOOKAHEAD = 24 * 200


def put(conn: redis.Redis, settings: Settings, kind: str, subject: str, payload: Any, at: float = REF_NOW) -> str:
    record = FetchRecord(kind=kind, subject=subject, fetched_at=at, payload=json.dumps(payload))
    return conn.xadd(Keys.of(settings).fetched, record.to_fields()).decode()


def alerts(db: Database) -> list[tuple]:
    with db.tx() as tx:
        return tx.all("SELECT id, kind, predictor_id, event_id, payload, state FROM alerts ORDER BY id")


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, redis_url: str) -> Settings:
    return make_settings(database_url=database_url, time_lookahead_hours=FAR_LOOKAHEAD)


def burst(settings: Settings, conn: redis.Redis, db: Database, name: str = "p1") -> Processor:
    processor = Processor(settings, conn, db, name=name, clock=lambda: REF_NOW)
    assert processor.run(burst=True) == 0
    return processor


def feed_round_one(conn: redis.Redis, settings: Settings) -> None:
    put(conn, settings, "leaderboard", "top", load_fixture("vote-ranking.json"))
    put(conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))


def test_new_tips_alerted_once_grouped_per_match(settings: Settings, redis_conn: redis.Redis, database: Database) -> None:
    feed_round_one(redis_conn, settings)
    burst(settings, redis_conn, database)
    rows = alerts(database)
    # +3 h match and the two tips on the far match; the started match is past its grace period.
    assert sorted(r[3] for r in rows) == [15979901, FAR_EVENT]
    far = json.loads(next(r[4] for r in rows if r[3] == FAR_EVENT))
    assert far["kind"] == "new_tip"
    assert [(t["market"], t["odds"]) for t in far["tips"]] == [("Full time", 2.2), ("Both teams to score", 1.8)]
    assert far["predictor"]["nickname"] == "GoalGuru_88"
    assert far["predictor"]["all_time"]["yield_pct"] == pytest.approx(13.2, abs=0.01)
    assert far["match"]["custom_id"] == "pRkbsQx"
    queue = Queue(ALERTS_QUEUE, connection=redis_conn)
    assert sorted(queue.job_ids) == sorted(outbox.job_id(r[0]) for r in rows)
    assert all(queue.fetch_job(j).args == (outbox.alert_id_of(j),) for j in queue.job_ids)
    assert redis_conn.zscore(Keys.of(settings).watched_events, str(FAR_EVENT)) is not None

    # A re-fetch of the same page, later, and a restart: nothing new.
    put(redis_conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"), at=REF_NOW + 300)
    burst(settings, redis_conn, Database(settings.database_url), name="p2")
    assert len(alerts(database)) == 2


def test_tip_beyond_lookahead_is_alerted_once_it_comes_within(make_settings, database_url, redis_conn) -> None:
    settings = make_settings(database_url=database_url, time_lookahead_hours=24)
    db = Database(settings.database_url)
    db.migrate()
    page = load_fixture(f"user-{GURU}-page0.json")
    put(redis_conn, settings, "predictions", GURU, page)
    burst(settings, redis_conn, db)
    assert [r[3] for r in alerts(db)] == [15979901]
    start = next(p["startDateTimestamp"] for p in page["predictions"] if p["eventId"] == FAR_EVENT)
    put(redis_conn, settings, "predictions", GURU, page, at=start - 23 * 3600)
    burst(settings, redis_conn, db)
    assert [r[3] for r in alerts(db)] == [15979901, FAR_EVENT]


def test_line_movement_alerts_once_and_rearms(settings: Settings, redis_conn: redis.Redis, database: Database) -> None:
    feed_round_one(redis_conn, settings)
    odds = load_fixture(f"event-{FAR_EVENT}-odds-all.json")
    put(redis_conn, settings, "odds", str(FAR_EVENT), odds, at=REF_NOW + 60)
    put(redis_conn, settings, "odds", str(FAR_EVENT), odds, at=REF_NOW + 120)
    burst(settings, redis_conn, database)
    moves = [json.loads(r[4]) for r in alerts(database) if r[1] == "line_movement"]
    # Full time "1": 6/5 -> 4/5 is -18.2 %; BTTS yes -4 % stays quiet; the second fetch repeats nothing.
    assert len(moves) == 1
    assert moves[0]["tip_odds"] == 2.2 and moves[0]["current_odds"] == 1.8
    assert moves[0]["delta"] == pytest.approx(-0.1818, abs=1e-4)
    assert moves[0]["match"]["event_slug"] == "northbridge-fc-eastvale-united"

    back = json.loads(json.dumps(odds))
    back["markets"][0]["choices"][0]["fractionalValue"] = "11/10"  # 2.10: -4.5 %, below half: re-armed
    put(redis_conn, settings, "odds", str(FAR_EVENT), back, at=REF_NOW + 180)
    put(redis_conn, settings, "odds", str(FAR_EVENT), odds, at=REF_NOW + 240)
    burst(settings, redis_conn, database)
    assert sum(1 for r in alerts(database) if r[1] == "line_movement") == 2
    with database.tx() as tx:
        history = tx.all("SELECT fractional FROM odds_history WHERE event_id = ? AND market_id = 1 AND choice = '1'"
                         " ORDER BY id", (FAR_EVENT,))
        goals = tx.all("SELECT DISTINCT choice_group FROM odds_history WHERE event_id = ? AND choice = 'Under'",
                       (FAR_EVENT,))
    # Each price the pick was offered at, in order; polls that saw no move add no row.
    assert [h[0] for h in history] == ["4/5", "11/10", "4/5"]
    # Every market's prices are kept, told apart by choice group.
    assert sorted(g[0] for g in goals) == ["2.5", "5.5"]


def test_two_processors_at_once_alert_each_tip_once(settings: Settings, redis_conn: redis.Redis,
                                                    database: Database) -> None:
    page = load_fixture(f"user-{GURU}-page0.json")
    for i in range(20):
        put(redis_conn, settings, "predictions", GURU, page, at=REF_NOW + i)
    barrier = threading.Barrier(2)
    results: list[int] = []

    def worker(name: str) -> None:
        db = Database(settings.database_url)
        conn = redis.Redis.from_url(settings.redis_url)
        processor = Processor(settings, conn, db, name=name, clock=lambda: REF_NOW)
        barrier.wait()
        results.append(processor.run(burst=True))
        results.append(processor.handled)

    threads = [threading.Thread(target=worker, args=(f"p{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results[0] == 0 and results[2] == 0
    assert results[1] + results[3] == 20
    assert sorted(r[3] for r in alerts(database)) == [15979901, FAR_EVENT]
    queued = Queue(ALERTS_QUEUE, connection=redis_conn).get_job_ids()  # one job per alert, repeats included
    assert sorted(queued) == sorted(outbox.job_id(r[0]) for r in alerts(database))


def test_bad_entries_go_to_dead_letters_and_processing_goes_on(settings: Settings, redis_conn: redis.Redis,
                                                               database: Database) -> None:
    keys = Keys.of(settings)
    redis_conn.xadd(keys.fetched, {"kind": "predictions", "subject": GURU})  # no payload
    put(redis_conn, settings, "predictions", GURU, {"predictions": "not a list"})
    redis_conn.xadd(keys.fetched, {"kind": "odds", "subject": "1", "fetched_at": "1", "payload": "{not json"})
    put(redis_conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    burst(settings, redis_conn, database)
    dead = redis_conn.xrange(keys.dead_letters)
    assert len(dead) == 3
    assert all(fields[b"reason"] for _id, fields in dead)
    assert len(alerts(database)) == 2
    assert redis_conn.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 0


def test_one_malformed_tip_leaves_the_rest_of_the_page_alertable(settings: Settings, redis_conn: redis.Redis,
                                                                  database: Database) -> None:
    page = load_fixture(f"user-{GURU}-page0.json")
    page["predictions"][1]["odds"] = {"decimalValue": "NaN"}  # the BTTS tip on the far match
    page["predictions"].append({"eventId": "not a number", "vote": "1"})
    put(redis_conn, settings, "predictions", GURU, page)
    burst(settings, redis_conn, database)
    far = json.loads(next(r[4] for r in alerts(database) if r[3] == FAR_EVENT))
    assert [t["market"] for t in far["tips"]] == ["Full time"]
    assert sorted(r[3] for r in alerts(database)) == [15979901, FAR_EVENT]
    assert redis_conn.xlen(Keys.of(settings).dead_letters) == 0


def test_an_entry_that_breaks_the_handler_is_dead_lettered_not_fatal(settings: Settings, redis_conn: redis.Redis,
                                                                      database: Database,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_info = predictors.info

    def buggy(tx: Any, predictor_id: str) -> Any:  # a bug that only GoalGuru's tips reach
        if predictor_id == GURU:
            raise RuntimeError("a bug")
        return real_info(tx, predictor_id)

    monkeypatch.setattr(predictors, "info", buggy)
    put(redis_conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    put(redis_conn, settings, "predictions", TACTICO, load_fixture(f"user-{TACTICO}-page0.json"))
    burst(settings, redis_conn, database)
    dead = redis_conn.xrange(Keys.of(settings).dead_letters)
    assert len(dead) == 1 and dead[0][1][b"reason"] == b"RuntimeError: a bug"
    assert [r[2] for r in alerts(database)] == [TACTICO]  # the entry behind it was processed
    assert redis_conn.xpending(Keys.of(settings).fetched, PROCESSOR_GROUP)["pending"] == 0


def test_restart_takes_up_own_pending_and_orphans(settings: Settings, redis_conn: redis.Redis,
                                                  database: Database) -> None:
    keys = Keys.of(settings)
    feed_round_one(redis_conn, settings)
    first = Processor(settings, redis_conn, database, name="crashed", clock=lambda: REF_NOW)
    first.consumer.ensure_group()
    assert len(first.consumer.new(10, None)) == 2  # read, never acknowledged: it "died"
    # Its own restart picks them up...
    again = Processor(settings, redis_conn, database, name="crashed", clock=lambda: REF_NOW)
    assert [i for i, _ in again.consumer.own_pending(10)]
    # ...and so does another consumer once they sat idle long enough.
    other = Processor(settings, redis_conn, database, name="other", clock=lambda: REF_NOW)
    other.consumer.claim_idle_ms = 0
    assert other.run(burst=True) == 0
    assert redis_conn.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 0
    assert len(alerts(database)) == 2


def test_a_backlog_processed_late_does_not_alert_matches_that_started_meanwhile(
        settings: Settings, redis_conn: redis.Redis, database: Database) -> None:
    put(redis_conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    processor = Processor(settings, redis_conn, database, name="late", clock=lambda: REF_NOW + 4 * 3600)
    assert processor.run(burst=True) == 0
    # The +3 h match kicked off an hour before the entry was processed; the far match still alerts.
    assert [r[3] for r in alerts(database)] == [FAR_EVENT]


@pytest.mark.parametrize("processed_after_kick_off", [False, True])
def test_odds_fetched_before_kick_off_and_processed_after_it_alert_no_line_movement(
        settings: Settings, redis_conn: redis.Redis, database: Database, processed_after_kick_off: bool) -> None:
    feed_round_one(redis_conn, settings)
    burst(settings, redis_conn, database)
    page = load_fixture(f"user-{GURU}-page0.json")
    kick_off = next(p["startDateTimestamp"] for p in page["predictions"] if p["eventId"] == FAR_EVENT)
    # Fetched a minute before kick-off; the price moved -18 %.
    put(redis_conn, settings, "odds", str(FAR_EVENT), load_fixture(f"event-{FAR_EVENT}-odds-all.json"),
        at=kick_off - 60)
    now = kick_off + 60 if processed_after_kick_off else kick_off - 30
    processor = Processor(settings, redis_conn, database, name="late", clock=lambda: now)
    assert processor.run(burst=True) == 0
    moves = [r for r in alerts(database) if r[1] == "line_movement"]
    assert len(moves) == (0 if processed_after_kick_off else 1)
    with database.tx() as tx:  # the prices are kept all the same
        assert tx.one("SELECT COUNT(*) FROM odds_history WHERE event_id = ?", (FAR_EVENT,))[0] > 0


def test_odds_history_is_ordered_by_observation_time_not_arrival(db: Database) -> None:
    def observe(fractional: str, at: float) -> None:
        price = Price(1, None, "1", fractional, 1 + parse_fraction(fractional))
        with db.tx() as tx:
            oddshistory.record(tx, FAR_EVENT, [price], at)

    def history() -> list[tuple[str, float]]:
        with db.tx() as tx:
            return [(f, t) for f, t in tx.all("SELECT fractional, observed_at FROM odds_history"
                                              " ORDER BY observed_at")]

    observe("6/5", 100)
    observe("4/5", 300)
    observe("4/5", 200)  # late, and equal to the change seen next: that change happened by 200 already
    assert history() == [("6/5", 100), ("4/5", 200)]
    observe("9/5", 150)  # late and different: history in between, not the latest price
    observe("6/5", 120)  # late, and the price then in force: nothing new
    observe("4/5", 200)  # the same observation again
    assert history() == [("6/5", 100), ("9/5", 150), ("4/5", 200)]
    with db.tx() as tx:
        assert oddshistory.latest(tx, FAR_EVENT) == {(1, None, "1"): "4/5"}
        assert oddshistory.superseded(tx, FAR_EVENT, 199) and not oddshistory.superseded(tx, FAR_EVENT, 200)


def test_unreadable_prices_are_logged_once_per_event_and_market(settings: Settings, redis_conn: redis.Redis,
                                                                 database: Database,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    odds = load_fixture(f"event-{FAR_EVENT}-odds-all.json")
    odds["markets"][0]["choices"][0]["fractionalValue"] = "11-10"
    odds["markets"][0]["choices"][1]["fractionalValue"] = "EVS"  # even money: understood
    odds["markets"][1]["choices"][0]["fractionalValue"] = "n/a"
    for minute in (1, 2, 3):
        put(redis_conn, settings, "odds", str(FAR_EVENT), odds, at=REF_NOW + 60 * minute)
    with caplog.at_level(logging.WARNING, logger="processor"):
        burst(settings, redis_conn, database)
    said = [r.getMessage() for r in caplog.records if "not understood" in r.getMessage()]
    first, second = (odds["markets"][i]["marketId"] for i in (0, 1))
    assert said == [f"odds of event {FAR_EVENT}, market {first}: price(s) not understood, left out: 1: '11-10'",
                    f"odds of event {FAR_EVENT}, market {second}: price(s) not understood, left out:"
                    f" {odds['markets'][1]['choices'][0]['name']}: 'n/a'"]
    with database.tx() as tx:
        evens = tx.one("SELECT decimal FROM odds_history WHERE event_id = ? AND market_id = ? AND choice = ?",
                       (FAR_EVENT, first, odds["markets"][0]["choices"][1]["name"]))
    assert evens == (2.0,)


def test_health_entries_become_health_alerts(settings: Settings, redis_conn: redis.Redis, database: Database) -> None:
    message = {"message": "HTTP 403 challenge; paused 60 s"}
    put(redis_conn, settings, "health", "upstream_blocked", message)
    put(redis_conn, settings, "health", "upstream_blocked", message)  # the same transition, read again
    burst(settings, redis_conn, database)
    rows = alerts(database)
    assert len(rows) == 1 and rows[0][1] == "health"
    with database.tx() as tx:
        assert tx.one("SELECT webhook FROM alerts")[0] == HEALTH_WEBHOOK


def test_database_connection_lost_is_one_line_and_nothing_is_lost(
        make_settings: Callable[..., Settings], pg_url: str, redis_conn: redis.Redis,
        caplog: pytest.LogCaptureFixture) -> None:
    import psycopg

    settings = make_settings(database_url=pg_url, time_lookahead_hours=FAR_LOOKAHEAD)
    db = Database(settings.database_url)
    db.migrate()
    put(redis_conn, settings, "leaderboard", "top", load_fixture("vote-ranking.json"))
    burst(settings, redis_conn, db)
    with db.tx() as tx:
        backend = tx.one("SELECT pg_backend_pid()")[0]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    put(redis_conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    with caplog.at_level("ERROR", logger="processor"):
        burst(settings, redis_conn, db)
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith("database unavailable")
    assert sorted(r[3] for r in alerts(db)) == [15979901, FAR_EVENT]
    assert redis_conn.xpending(Keys.of(settings).fetched, PROCESSOR_GROUP)["pending"] == 0
    db.close()


def test_the_kick_off_rule_is_the_same_for_the_database_and_the_watched_set(
        settings: Settings, redis_conn: redis.Redis, database: Database) -> None:
    page = PredictionsPage.model_validate(load_fixture(f"user-{GURU}-page0.json"))
    keys = Keys.of(settings)
    with database.tx() as tx:
        for prediction in page.predictions:
            assert dedup.claim_tip(tx, GURU, prediction, REF_NOW)
        starts = {p.event_id: p.start_date_timestamp for p in page.predictions}
        for now in (REF_NOW, min(starts.values()), max(starts.values())):
            ahead = {e: s for e, s in starts.items() if not watch.kicked_off(s, now)}
            assert dedup.upcoming_events(tx, now) == ahead
            redis_conn.delete(keys.watched_events)
            watch.add(redis_conn, keys, starts)
            assert sorted(watch.due(redis_conn, keys, now)) == sorted(str(e) for e in ahead)
            assert redis_conn.zcard(keys.watched_events) == len(ahead)


def test_a_lost_reply_to_the_redis_side_leaves_each_alert_one_job(settings: Settings, redis_conn: redis.Redis,
                                                                   database: Database, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Redis ran the batch's script (jobs enqueued, entries acknowledged) but the connection broke before its
    reply: the processor does it all again, and no alert gets a second job."""
    feed_round_one(redis_conn, settings)
    keys = Keys.of(settings)
    real_eval = redis.Redis.eval
    pending_when_lost: list[int] = []

    def reply_lost(self: redis.Redis, script: str, numkeys: int, *keys_and_args: Any) -> Any:
        reply = real_eval(self, script, numkeys, *keys_and_args)
        if script == COMMIT_SCRIPT and not pending_when_lost:
            pending_when_lost.append(redis_conn.xpending(keys.fetched, PROCESSOR_GROUP)["pending"])
            raise redis.ConnectionError("Connection closed by server.")
        return reply

    monkeypatch.setattr(redis.Redis, "eval", reply_lost)
    burst(settings, redis_conn, database)
    assert pending_when_lost == [0]  # the acknowledgement went with the jobs, in the same step
    ids = [r[0] for r in alerts(database)]
    assert len(ids) == 2
    queued = Queue(ALERTS_QUEUE, connection=redis_conn).get_job_ids()  # repeats included
    assert sorted(queued) == sorted(outbox.job_id(i) for i in ids)
    assert redis_conn.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 0
    assert len([r for r in caplog.records if "Redis unavailable" in r.getMessage()]) == 1


def test_alerted_tips_are_settled_once_and_keep_the_last_price_before_kick_off(
        settings: Settings, redis_conn: redis.Redis, database: Database) -> None:
    """The figures `sofamon report` reads: a result from the predictor's own page, a closing price from the odds."""
    feed_round_one(redis_conn, settings)
    odds = load_fixture(f"event-{FAR_EVENT}-odds-all.json")  # Full time "1" at 4/5 (1.80), BTTS yes at 8/11
    put(redis_conn, settings, "odds", str(FAR_EVENT), odds, at=REF_NOW + 60)
    closer = json.loads(json.dumps(odds))
    closer["markets"][0]["choices"][0]["fractionalValue"] = "1/1"  # 2.00, seen later: the closing price
    put(redis_conn, settings, "odds", str(FAR_EVENT), closer, at=REF_NOW + 120)
    put(redis_conn, settings, "odds", str(FAR_EVENT), odds, at=REF_NOW + 90)  # older, processed late: kept out
    burst(settings, redis_conn, database)
    page = load_fixture(f"user-{GURU}-page0.json")
    # Another predictor tips the draw on the same match: its alert shows the draw's price now (13/5) by the tip's.
    draw = {**next(p for p in page["predictions"] if p["eventId"] == FAR_EVENT), "id": "tactico-draw", "vote": "X",
            "odds": {"fractionalValue": "5/2", "decimalValue": "3.50"}}
    put(redis_conn, settings, "predictions", TACTICO, {"predictions": [draw], "hasNextPage": False}, at=REF_NOW + 150)
    burst(settings, redis_conn, database)
    tactico = json.loads(alerts(database)[-1][4])
    assert (tactico["predictor"]["id"], tactico["tips"][0]["odds"], tactico["tips"][0]["current_odds"]) == (
        TACTICO, 3.5, 3.6)
    assert tactico["record"] is None  # nothing of theirs settled yet
    start = next(p["startDateTimestamp"] for p in page["predictions"] if p["eventId"] == FAR_EVENT)
    put(redis_conn, settings, "odds", str(FAR_EVENT), odds, at=start + 60)  # in play: no closing price
    finished = json.loads(json.dumps(page))
    for p in finished["predictions"]:
        if p["eventId"] == FAR_EVENT:
            p["status"] = {"code": 100, "description": "Ended", "type": "finished"}
            p["correct"] = 1 if p["vote"] == "1" else 0
    put(redis_conn, settings, "predictions", GURU, finished, at=start + 3 * 3600)
    won_again_lost = json.loads(json.dumps(finished))
    for p in won_again_lost["predictions"]:
        if p["eventId"] == FAR_EVENT:
            p["correct"] = -1  # a later read saying otherwise changes nothing: settled once
    put(redis_conn, settings, "predictions", GURU, won_again_lost, at=start + 4 * 3600)
    burst(settings, redis_conn, database)
    with database.read() as tx:
        rows = tx.all("SELECT vote, result, closing_decimal FROM tips WHERE event_id = ? AND predictor_id = ?"
                      " ORDER BY vote", (FAR_EVENT, GURU))
    assert [(vote, result) for vote, result, _ in rows] == [("1", "won"), ("yes", "lost")]
    assert rows[0][2] == pytest.approx(2.0) and rows[1][2] == pytest.approx(1 + 8 / 11)
    # GoalGuru's next tip quotes our record of them: 2 settled, ROI (1.20 - 1) / 2, CLV of 2.20 on 2.00 and
    # 1.80 on 1.727 (BTTS yes at 8/11).
    later = {**next(p for p in page["predictions"] if p["eventId"] == FAR_EVENT), "id": "later", "eventId": 15981999,
             "startDateTimestamp": start + 2 * 86_400}
    put(redis_conn, settings, "predictions", GURU, {"predictions": [later], "hasNextPage": False}, at=start + 5 * 3600)
    burst(settings, redis_conn, database)
    record = json.loads(alerts(database)[-1][4])["record"]
    assert (record["settled"], record["enough"]) == (2, False)
    assert record["roi_pct"] == pytest.approx(100 * (2.2 - 1 - 1) / 2)
    assert record["clv_pct"] == pytest.approx(100 * ((2.2 / 2.0 - 1) + (1.8 / (1 + 8 / 11) - 1)) / 2)
