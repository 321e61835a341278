"""The daily digest: when it is due (pure, fixed clocks), and a real processor sending it once, on both databases."""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import redis
from rq import Queue

import notifier.main
import processor.main as processor_main
from notifier.render import render
from processor import digest
from processor.main import Processor
from shared import outbox, settlements
from shared.alerts import DigestAlert, SettledTip
from shared.keys import ALERTS_QUEUE
from shared.scorecard import Scored, TipRecord
from shared.settings import Settings
from shared.settlements import Settled
from shared.storage import Database
from tests.fakes.discord import FakeDiscord
from tests.test_embed import limits_ok
from tests.test_notifier import TIMINGS
from tests.test_report import event_of, predictor, tip

LONDON = ZoneInfo("Europe/London")
NINE = time(9, 0)
HOUR = 3600.0
DAY = 86_400.0


def at(local: str, tz: ZoneInfo = LONDON) -> float:
    """A local wall-clock time (`2026-11-22 09:00`) as a Unix time; `fold=1` for the second of a repeated hour."""
    fold = local.endswith("(again)")
    return datetime.fromisoformat(local.removesuffix(" (again)")).replace(tzinfo=tz, fold=int(fold)).timestamp()


# -- when it is due ----------------------------------------------------------------------------------------------
def test_yesterday_s_digest_is_due_from_digest_time_until_the_day_ends() -> None:
    assert digest.due(at("2026-11-22 08:59:59"), NINE, LONDON) is None
    assert digest.due(at("2026-11-22 09:00"), NINE, LONDON) == date(2026, 11, 21)
    assert digest.due(at("2026-11-22 23:59:59"), NINE, LONDON) == date(2026, 11, 21)  # missed at 09:00: still due
    # The next day, before its DIGEST_TIME: nothing (never the digest of two days ago), then the next digest.
    assert digest.due(at("2026-11-23 08:00"), NINE, LONDON) is None
    assert digest.due(at("2026-11-23 09:00"), NINE, LONDON) == date(2026, 11, 22)


def test_across_midnight_and_in_the_poll_timezone_not_utc() -> None:
    assert digest.due(at("2026-11-22 00:00"), time(0, 0), LONDON) == date(2026, 11, 21)
    assert digest.due(at("2026-11-21 23:59:59"), time(0, 0), LONDON) == date(2026, 11, 20)
    assert digest.due(at("2026-11-22 00:29"), time(0, 30), LONDON) is None
    assert digest.due(at("2026-11-22 00:30"), time(0, 30), LONDON) == date(2026, 11, 21)
    # 21:30 in New York is already the next day in UTC: the day is New York's.
    new_york = ZoneInfo("America/New_York")
    now = at("2026-11-22 21:30", new_york)
    assert datetime.fromtimestamp(now, LONDON).date() == date(2026, 11, 23)
    assert digest.due(now, time(21, 0), new_york) == date(2026, 11, 21)
    assert digest.due(now - HOUR, time(21, 0), new_york) is None


def test_daylight_saving_days() -> None:
    # 29 March 2026: London's clocks go from 01:00 GMT to 02:00 BST. 01:30 never happens: due from 02:00 on.
    assert digest.due(at("2026-03-29 00:59:59"), time(1, 30), LONDON) is None
    assert digest.due(at("2026-03-29 02:00"), time(1, 30), LONDON) == date(2026, 3, 28)
    assert at("2026-03-29 02:00") - at("2026-03-29 00:59:59") == 1  # one second later
    # 25 October 2026: 02:00 BST goes back to 01:00 GMT. 01:30 happens twice: due from the first.
    assert digest.due(at("2026-10-25 01:29"), time(1, 30), LONDON) is None
    assert digest.due(at("2026-10-25 01:30"), time(1, 30), LONDON) == date(2026, 10, 24)
    # The second 01:30 (GMT, an hour later) asks for the same day's: made already, so not again.
    assert digest.due(at("2026-10-25 01:30 (again)"), time(1, 30), LONDON) == date(2026, 10, 24)
    assert at("2026-10-25 01:30 (again)") - at("2026-10-25 01:30") == HOUR
    # A day of 23 hours and one of 25, each bounded by its own midnights.
    start, end = digest.bounds(date(2026, 3, 29), LONDON)
    assert (start, end - start) == (at("2026-03-29 00:00"), 23 * HOUR)
    start, end = digest.bounds(date(2026, 10, 25), LONDON)
    assert (start, end - start) == (at("2026-10-25 00:00"), 25 * HOUR)
    assert digest.bounds(date(2026, 10, 26), LONDON)[0] == end


def test_no_digest_time_means_never() -> None:
    for moment in ("2026-11-22 00:00", "2026-11-22 09:00", "2026-11-22 23:59"):
        assert digest.due(at(moment), None, LONDON) is None


# -- what it says ------------------------------------------------------------------------------------------------
def test_the_digest_names_markets_and_picks_like_alerts_and_ranks_predictors_like_the_report() -> None:
    settled = [Settled("p1", "GoalGuru_88", "Arsenal", "Chelsea", "1", 1, 2.2, 2.0, "won"),
               Settled("p2", None, "Leeds", "Hull", "yes", 5, 1.8, None, "lost")]
    scored = [Scored("p1", "GoalGuru_88", TipRecord(2.2, "won", 2.0)),
              Scored("p2", None, TipRecord(1.8, "lost", 1.5)),
              Scored("p2", None, TipRecord(3.0, None, None))]
    alert = digest.build(date(2026, 11, 21), settled, scored, min_settled=2)
    assert alert is not None and (alert.day, alert.window_days) == ("2026-11-21", 30)
    assert alert.settled == [
        SettledTip(nickname="GoalGuru_88", match="Arsenal vs Chelsea", market="Full time", pick="Arsenal to win",
                   odds=2.2, closing_odds=2.0, result="won"),
        SettledTip(nickname="p2", match="Leeds vs Hull", market="Both teams to score", pick="Yes", odds=1.8,
                   result="lost")]
    # p2's CLV (1.8 on 1.5: +20 %) beats p1's (+10 %): first, as in `sofamon report`.
    assert [(r.nickname, r.alerted) for r in alert.predictors] == [("p2", 2), ("GoalGuru_88", 1)]
    record = alert.predictors[0].record
    assert record is not None and record.model_dump() == pytest.approx(
        {"settled": 1, "roi_pct": -100.0, "clv_pct": 20.0, "enough": False})
    # Nothing settled that day and nothing alerted in the window: nothing to say.
    assert digest.build(date(2026, 11, 21), [], [], min_settled=2) is None
    assert digest.build(date(2026, 11, 21), [], scored, min_settled=2) is not None  # the records are news


# -- sent by the processor ---------------------------------------------------------------------------------------
class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, redis_url: str) -> Settings:
    return make_settings(database_url=database_url, digest_time=NINE, poll_timezone="Europe/London",
                         scorecard_min_settled=2)


def run(settings: Settings, conn: redis.Redis, db: Database, clock: Clock, name: str = "p1",
        processor: Processor | None = None) -> Processor:
    processor = processor or Processor(settings, conn, db, name=name, clock=clock)
    assert processor.run(burst=True) == 0
    return processor


def digests(db: Database) -> list[tuple[int, DigestAlert]]:
    with db.read() as tx:
        rows = tx.all("SELECT id, payload FROM alerts WHERE kind = 'digest' ORDER BY id")
    return [(alert_id, DigestAlert.model_validate_json(payload)) for alert_id, payload in rows]


def seed(db: Database) -> None:
    """Tips settled on 21 November 2026 (London), around it, and long before."""
    with db.tx() as tx:
        predictor(tx, "p1", "GoalGuru_88")
        predictor(tx, "p2", "Tactico.ES")
        predictor(tx, "p3", "Quiet")
        week_ago = at("2026-11-14 12:00")
        tip(tx, "won", "p1", 2.2, alerted_at=week_ago, start=at("2026-11-21 15:00"), vote_type=1,
            home="Arsenal", away="Chelsea")
        tip(tx, "lost", "p1", 3.4, alerted_at=week_ago, start=at("2026-11-21 12:00"), vote="X", vote_type=1,
            home="Leeds", away="Hull")
        tip(tx, "void", "p2", 1.9, alerted_at=week_ago, start=at("2026-11-21 20:00"), vote="yes", vote_type=5,
            home="Lyon", away="Nice")
        tip(tx, "day before", "p2", 2.5, alerted_at=week_ago, start=at("2026-11-20 18:00"))
        tip(tx, "day after", "p1", 1.5, alerted_at=week_ago, start=at("2026-11-21 22:00"))
        tip(tx, "open", "p2", 2.0, alerted_at=at("2026-11-21 10:00"), start=at("2026-11-23 15:00"))
        tip(tx, "old", "p3", 4.0, alerted_at=at("2026-10-01 12:00"), start=at("2026-10-02 12:00"), vote="2",
            vote_type=1, home="Ajax", away="PSV")
    with db.tx() as tx:
        assert settlements.record_closing(tx, "won", 2.0, at("2026-11-21 14:50"))
        assert settlements.record_closing(tx, "void", 2.0, at("2026-11-21 10:00"))
        assert settlements.record_results(tx, [("day before", "won")], at("2026-11-20 23:59:59"))
        assert settlements.record_results(tx, [("lost", "lost")], at("2026-11-21 00:00"))
        assert settlements.record_results(tx, [("won", "won"), ("old", "won")], at("2026-11-21 17:00"))
        assert settlements.void_event(tx, event_of("void"), at("2026-11-21 19:00"))
        assert settlements.record_results(tx, [("day after", "lost")], at("2026-11-22 00:00"))


def test_the_processor_sends_yesterday_s_digest_once_from_digest_time(
        settings: Settings, redis_conn: redis.Redis, database: Database, caplog: pytest.LogCaptureFixture) -> None:
    seed(database)
    clock = Clock(at("2026-11-22 08:58"))
    first = run(settings, redis_conn, database, clock)
    assert digests(database) == []  # before DIGEST_TIME
    clock.now = at("2026-11-22 09:00")
    with caplog.at_level(logging.INFO, logger="processor"):
        run(settings, redis_conn, database, clock, processor=first)
    (alert_id, alert), = digests(database)
    assert alert.day == "2026-11-21"
    # Settled that day (from its first instant to before the next day's), by kick-off, whenever alerted.
    assert [(t.nickname, t.match, t.market, t.pick, t.odds, t.closing_odds, t.result) for t in alert.settled] == [
        ("Quiet", "Ajax vs PSV", "Full time", "PSV to win", 4.0, None, "won"),
        ("GoalGuru_88", "Leeds vs Hull", "Full time", "Draw", 3.4, None, "lost"),
        ("GoalGuru_88", "Arsenal vs Chelsea", "Full time", "Arsenal to win", 2.2, 2.0, "won"),
        ("Tactico.ES", "Lyon vs Nice", "Both teams to score", "Yes", 1.9, 2.0, "void")]
    # Each predictor's tips alerted in the 30 days (not Quiet's, alerted in October), best CLV first: GoalGuru's
    # 2.2 on 2.0 (+10 %) before Tactico's 1.9 on 2.0 (-5 %).
    assert [(r.nickname, r.alerted) for r in alert.predictors] == [("GoalGuru_88", 3), ("Tactico.ES", 3)]
    assert [r.record.model_dump() if r.record else None for r in alert.predictors] == [
        pytest.approx({"settled": 3, "roi_pct": 100 * (1.2 - 1 - 1) / 3, "clv_pct": 10.0, "enough": True}),
        pytest.approx({"settled": 2, "roi_pct": 150.0, "clv_pct": -5.0, "enough": True})]
    with database.read() as tx:
        stored = tx.one("SELECT day, alert_id FROM digests")
    assert stored == ("2026-11-21", alert_id)
    queue = Queue(ALERTS_QUEUE, connection=redis_conn)
    assert queue.job_ids == [outbox.job_id(alert_id)]
    assert queue.fetch_job(outbox.job_id(alert_id)).description == f"alert {alert_id}: digest 2026-11-21"
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("digest ")] == [
        f"digest 2026-11-21 queued as alert {alert_id}: 4 tips settled that day, 2 predictors' records over 30 days"]
    limits_ok(render(alert))

    # The next loop, a restart, a second processor: none again.
    clock.now += 60
    run(settings, redis_conn, database, clock, processor=first)
    run(settings, redis_conn, Database(settings.database_url), Clock(at("2026-11-22 09:05")), name="p2")
    assert len(digests(database)) == 1 and len(queue.job_ids) == 1


def test_two_processors_that_both_found_no_digest_make_it_once(
        settings: Settings, redis_conn: redis.Redis, database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The day's row decides, in the transaction that inserts the alert: as if the second had read before the
    first wrote (two hosts at the same minute)."""
    seed(database)
    run(settings, redis_conn, database, Clock(at("2026-11-22 09:00")))
    monkeypatch.setattr(outbox, "digest_made", lambda tx, day: False)
    run(settings, redis_conn, Database(settings.database_url), Clock(at("2026-11-22 09:00")), name="p2")
    assert len(digests(database)) == 1 and len(Queue(ALERTS_QUEUE, connection=redis_conn).job_ids) == 1


def test_a_processor_down_at_digest_time_sends_yesterday_s_when_back_never_older_ones(
        settings: Settings, redis_conn: redis.Redis, database: Database) -> None:
    seed(database)
    # Down from before 09:00 on the 22nd until the 23rd at 08:00: the 21st's digest is not sent any more, and the
    # 22nd's is not due yet.
    clock = Clock(at("2026-11-23 08:00"))
    processor = run(settings, redis_conn, database, clock)
    assert digests(database) == []
    clock.now = at("2026-11-23 09:30")
    run(settings, redis_conn, database, clock, processor=processor)
    (_, alert), = digests(database)
    # The 22nd's digest: the tip settled at its midnight; the records over the 30 days up to now.
    assert alert.day == "2026-11-22"
    assert [(t.nickname, t.result) for t in alert.settled] == [("GoalGuru_88", "lost")]
    assert [r.nickname for r in alert.predictors] == ["GoalGuru_88", "Tactico.ES"]
    # Back later the same day it was due (at 18:00 rather than 09:00): still sent.
    database_2 = Database(settings.database_url)
    with database_2.tx() as tx:
        tx.execute("DELETE FROM digests")
        tx.execute("DELETE FROM alerts WHERE kind = 'digest'")
    run(settings, redis_conn, database_2, Clock(at("2026-11-23 18:00")), name="p2")
    assert [a.day for _, a in digests(database)] == ["2026-11-22"]


def test_nothing_to_say_no_digest(settings: Settings, redis_conn: redis.Redis, database: Database,
                                  caplog: pytest.LogCaptureFixture) -> None:
    with database.tx() as tx:  # one tip, alerted and settled long ago
        tip(tx, "old", "p1", 2.0, alerted_at=at("2026-09-01 12:00"), start=at("2026-09-02 12:00"))
        settlements.record_results(tx, [("old", "won")], at("2026-09-02 15:00"))
    with caplog.at_level(logging.INFO, logger="processor"):
        run(settings, redis_conn, database, Clock(at("2026-11-22 09:00")))
    assert digests(database) == [] and Queue(ALERTS_QUEUE, connection=redis_conn).job_ids == []
    assert "digest 2026-11-21 not sent: no tip settled that day and none alerted in the last 30 days" in caplog.text


def test_no_digest_time_no_digest(make_settings: Callable[..., Settings], database_url: str,
                                  redis_conn: redis.Redis) -> None:
    settings = make_settings(database_url=database_url)
    database = Database(database_url)
    database.migrate()
    seed(database)
    run(settings, redis_conn, database, Clock(at("2026-11-22 12:00")))
    assert digests(database) == []


def test_the_digest_reaches_discord(make_settings: Callable[..., Settings], database_url: str,
                                    redis_conn: redis.Redis) -> None:
    """Processor, then notifier, against the fake Discord: the digest is one embed on the main webhook."""
    with FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as discord:
        settings = make_settings(database_url=database_url, digest_time=NINE, scorecard_min_settled=2,
                                 discord_webhook_url=discord.url(), **TIMINGS)
        database = Database(database_url)
        database.migrate()
        seed(database)
        with database.tx() as tx:  # the tips' own alerts went out long ago
            tx.execute("UPDATE alerts SET state = 'sent'")
        run(settings, redis_conn, database, Clock(at("2026-11-22 09:00")))
        assert notifier.main.run(settings, burst=True) == 0
        embed, = discord.accepted_embeds()
    assert embed["title"] == "Daily digest 2026-11-21: 4 settled (2 won, 1 lost)"
    assert embed["description"].splitlines()[0] == "\u2705 Quiet: Ajax vs PSV, Full time: PSV to win @ 4.00"
    assert "Arsenal to win @ 2.20 (closed 2.00)" in embed["description"]
    assert [(f["name"], f["value"]) for f in embed["fields"]] == [
        ("GoalGuru\\_88", "3 alerted; 3 settled, ROI -26.7%, CLV +10.0%"),
        ("Tactico.ES", "3 alerted; 2 settled, ROI +150.0%, CLV -5.0%")]
    with database.read() as tx:
        assert tx.all("SELECT kind, webhook, state FROM alerts WHERE kind = 'digest'") == [("digest", "main", "sent")]


def test_a_digest_whose_job_redis_refused_gets_it_at_the_next_check(
        settings: Settings, redis_conn: redis.Redis, database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(database)
    processor = Processor(settings, redis_conn, database, name="p1", clock=Clock(at("2026-11-22 09:00")))
    real = processor_main.enqueue_alert
    calls: list[int] = []

    def refused_once(*args: object, **kwargs: object) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise redis.ConnectionError("Redis went away")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(processor_main, "enqueue_alert", refused_once)
    with pytest.raises(redis.ConnectionError):  # what the processor's loop waits out and tries again
        processor._check_digest()
    (alert_id, _), = digests(database)  # committed all the same
    queue = Queue(ALERTS_QUEUE, connection=redis_conn)
    assert queue.job_ids == []
    processor._check_digest()
    assert queue.job_ids == [outbox.job_id(alert_id)] and len(digests(database)) == 1
