"""Every query the processor runs on its hot path searches an index, on both databases (checked with EXPLAIN).

A query that scans a whole table costs more with every tip stored; one that searches an index does not.
The statements are recorded while a handler works through each kind of record (and the minute's sync of
the watched events and deferred tips), then explained one by one.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from processor import consensusmembers, dedup
from processor.handle import Handler, Rules
from shared import outbox, settlements, unsettled
from shared.models import FetchRecord
from shared.storage import Database, Tx
from tests.fakes.sofascore import REF_NOW, load_fixture
from tests.seed import predictor, seed_history

GURU = "6a1f0c2e9b3d4e5f60718293"  # whose pages the fixtures hold
# Read as the pages of a predictor with a history: their own old tips must not slow their pages down either.
PREDICTOR = predictor(0)
FAR_EVENT = 15981204  # GoalGuru's two tips, ~111 days after REF_NOW: deferred under a 24 h look-ahead
NOW = REF_NOW + 0.25  # a clock's time has a fraction, kick-offs do not (which a query must not trip on)
# Rows of each table of history added, over ten predictors: a scan of them costs thousands of pages (steps),
# a search of a few rows a few pages (steps) more than in an empty table, for its deeper index.
HISTORY = 100_000

Statement = tuple[str, tuple[Any, ...]]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Statement]:
    """Every statement run through a `Tx` from now on, with its parameters."""
    statements: list[Statement] = []
    execute = Tx.execute

    def record(self: Tx, sql: str, params: Any = ()) -> int:
        statements.append((sql, tuple(params)))
        return execute(self, sql, params)

    monkeypatch.setattr(Tx, "execute", record)
    return statements


def record(kind: str, subject: str, payload: Any, at: float) -> FetchRecord:
    return FetchRecord(kind=kind, subject=subject, fetched_at=at, payload=json.dumps(payload))


def hot_path(db: Database) -> Iterator[FetchRecord]:
    """Each kind of record, so that each branch of the handler runs: stored tips, claims, alerts, deferred
    tips, deletions, line movement, a refreshed match, a match's crowd votes, a health transition."""
    page = load_fixture(f"user-{GURU}-page0.json")
    yield record("leaderboard", "top", load_fixture("vote-ranking.json"), NOW)
    # A full page of new tips: statements about 20 tips at once (planners choose by the size of a list).
    template = page["predictions"][0]
    full = [{**template, "id": f"full-{n}", "eventId": 7_000_000 + n, "startDateTimestamp": REF_NOW + 3600 + 60 * n}
            for n in range(20)]
    yield record("predictions", predictor(1), {"predictions": full, "hasNextPage": True}, NOW)
    yield record("predictions", PREDICTOR, page, NOW)
    yield record("predictions", PREDICTOR, load_fixture(f"user-{GURU}-page1.json"), NOW + 10)
    yield record("predictions", PREDICTOR, page, NOW + 20)
    yield record("odds", "15979901", load_fixture(f"event-{FAR_EVENT}-odds-all.json"), NOW + 30)
    far = next(p for p in page["predictions"] if p["eventId"] == FAR_EVENT)
    event = {"event": {"id": FAR_EVENT, "status": {"code": 0, "type": "notstarted"},
                       "startTimestamp": far["startDateTimestamp"]}}
    yield record("event", str(FAR_EVENT), event, NOW + 40)
    yield record("votes", "15981377", load_fixture("event-15981377-votes.json"), NOW + 45)
    yield record("health", "upstream_blocked", {"message": "HTTP 403"}, NOW + 50)


class _Undo(Exception):
    """Raised to roll a measured statement back."""


def cost(db: Database, sql: str, params: tuple[Any, ...]) -> int:
    """What running the statement takes, rolled back afterwards: SQLite's virtual machine steps, PostgreSQL's
    buffers (pages) touched. A search costs about the same however big the table; a scan grows with it."""
    measured = 0
    try:
        with db.tx() as tx:
            if db.dialect == "sqlite":
                conn = db._connection()

                def step() -> int:
                    nonlocal measured
                    measured += 1
                    return 0

                conn.set_progress_handler(step, 1)
                try:
                    tx.all(sql, params)  # every row: a query runs only as far as the rows fetched
                finally:
                    conn.set_progress_handler(None, 1)
            else:
                plan = tx.one(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
                assert plan is not None
                top = (plan[0] if isinstance(plan[0], list) else json.loads(plan[0]))[0]["Plan"]
                measured = sum(top.get(f"Shared {kind} Blocks", 0) for kind in ("Hit", "Read", "Dirtied", "Written"))
            raise _Undo
    except _Undo:
        pass
    return measured


def handle_hot_path(db: Database) -> None:
    handler = Handler(db, Rules(lookahead_hours=24, grace_minutes=5, threshold=0.15), clock=lambda: NOW)
    for fetched in hot_path(db):
        handler.handle(fetched)


def grown_with_history(db: Database, statements: list[Statement]) -> dict[str, tuple[int, int]]:
    """The statements (their first 120 characters) that cost much more once the history is stored: (before, after)."""
    before = {statement: cost(db, *statement) for statement in statements}
    seed_history(db, HISTORY, REF_NOW, predictors=10)
    after = {statement: cost(db, *statement) for statement in statements}
    return {sql[:120]: (before[(sql, params)], spent) for (sql, params), spent in after.items()
            if spent > 3 * before[(sql, params)] + 300}


def test_no_query_of_the_processor_costs_more_with_more_history(db: Database, recorded: list[Statement]) -> None:
    handle_hot_path(db)
    with db.read() as tx:
        dedup.upcoming_events(tx, NOW)
        dedup.waiting(tx, NOW, 5)
        consensusmembers.waiting_events(tx)
        settlements.open_after_kickoff(tx, NOW - unsettled.SETTLE_AFTER_SECONDS, NOW - unsettled.GIVE_UP_SECONDS)
    statements = list(dict.fromkeys(recorded))  # each distinct statement once
    assert {sql.split()[0] for sql, _ in statements} >= {"SELECT", "INSERT", "UPDATE"}  # it saw the handler at work
    assert grown_with_history(db, statements) == {}


def test_the_daily_digest_reads_its_day_through_an_index(db: Database, recorded: list[Statement]) -> None:
    """The processor's once-a-day reads (processor/main.py `_make_digest`): the tips settled on a day and whether
    the day's digest is made. (Its third, the tips alerted in the 30 days, is `sofamon report`'s: its cost follows
    the tips in the window, which the history's are.)"""
    handle_hot_path(db)
    recorded.clear()
    settlements.settled_between(db, NOW - 86_400, NOW)
    with db.read() as tx:
        outbox.digest_made(tx, "2026-11-21")
    statements = list(dict.fromkeys(recorded))
    assert len(statements) == 2
    assert grown_with_history(db, statements) == {}
