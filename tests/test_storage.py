"""Storage on both databases: migrations, and the outbox's claim/lease rules."""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from shared import outbox, settlements, storage
from shared.alerts import HealthAlert
from shared.scorecard import TipRecord, figures
from shared.settings import Settings
from shared.storage import Database
from shared.webhooks import HEALTH_WEBHOOK, MAIN_WEBHOOK
from tests.seed import seed_history


def _add(db: Database, n: int, webhook: str = MAIN_WEBHOOK) -> list[int]:
    with db.tx() as tx:
        return [outbox.insert(tx, HealthAlert(title=f"a{i}", message="m"), webhook=webhook, created_at=1000.0 + i)
                for i in range(n)]


def test_migrations_are_idempotent(db: Database) -> None:
    assert db.migrate() == 0
    assert db.size_bytes() is None or db.size_bytes() > 0


# Migration 7 indexes the tips by kick-off (and drops the index it replaces).
KICKOFF_MIGRATION = 7


def _contents(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    with db.read() as tx:
        return {table: tx.all(f"SELECT * FROM {table} ORDER BY {key}") for table, key in
                (("tips", "tip_key"), ("alerts", "id"), ("odds_history", "id"), ("predictors", "id"))}


def _tip_indexes(db: Database) -> set[str]:
    with db.read() as tx:
        if db.dialect == "sqlite":
            rows = tx.all("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tips'")
        else:
            rows = tx.all("SELECT indexname FROM pg_indexes WHERE tablename = 'tips' AND schemaname = current_schema()")
    return {str(name) for (name,) in rows}


def test_the_kick_off_indexes_come_to_a_database_with_its_data_kept(database_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(database_url)
    with monkeypatch.context() as before:
        before.setattr(storage, "MIGRATIONS", storage.MIGRATIONS[:KICKOFF_MIGRATION - 1])
        db.migrate()
    seed_history(db, 400, 1795348800.0, predictors=7)
    kept = _contents(db)
    assert "tips_state" in _tip_indexes(db) and len(kept["tips"]) == 400

    assert db.migrate() == len(storage.MIGRATIONS) - KICKOFF_MIGRATION + 1
    # Every row kept, column for column (later migrations add columns: they come after the old ones).
    assert {table: [row[:len(rows[0])] for row in _contents(db)[table]] if rows else []
            for table, rows in kept.items()} == kept
    assert {"tips_kickoff", "tips_deferred"} <= _tip_indexes(db) and "tips_state" not in _tip_indexes(db)
    db.close()


# Migration 9 keeps each predictor's record of settled tips as running sums, filled from the tips settled before.
RECORDS_MIGRATION = 9


def test_the_predictors_records_are_filled_from_the_tips_already_settled(database_url: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(database_url)
    with monkeypatch.context() as before:
        before.setattr(storage, "MIGRATIONS", storage.MIGRATIONS[:RECORDS_MIGRATION - 1])
        db.migrate()
    # (odds, result, closing): won at 2.5 closing 2.0; lost at 1.8 closing 2.0; void; won without odds; open.
    tips = [(2.5, "won", 2.0), (1.8, "lost", 2.0), (3.0, "void", None), (None, "won", None), (2.0, None, 1.9)]
    with db.tx() as tx:
        for n, (odds, result, closing) in enumerate(tips):
            tx.execute("INSERT INTO tips (tip_key, predictor_id, event_id, vote, odds_decimal, start_ts, home, away,"
                       " created_at, state, result, closing_decimal) VALUES (?, 'p1', ?, '1', ?, 0, 'A', 'B', 0,"
                       " 'alerted', ?, ?)", (f"t{n}", n, odds, result, closing))
    assert db.migrate() == len(storage.MIGRATIONS) - RECORDS_MIGRATION + 1
    with db.read() as tx:
        record = settlements.record_of(tx, "p1")
    assert record == figures(TipRecord(*tip) for tip in tips[:4])
    assert (record.settled, record.roi_pct, record.clv_pct) == (4, pytest.approx(100 * (1.5 - 1) / 2),
                                                                pytest.approx(100 * ((1.25 - 1) + (0.9 - 1)) / 2))
    db.close()


def test_claim_takes_oldest_first_and_only_once(db: Database) -> None:
    ids = _add(db, 5)
    _add(db, 2, webhook=HEALTH_WEBHOOK)
    first = outbox.claim(db, MAIN_WEBHOOK, "n1", now=2000.0, lease_seconds=60, limit=3)
    second = outbox.claim(db, MAIN_WEBHOOK, "n2", now=2000.0, lease_seconds=60, limit=3)
    assert [r.id for r in first] == ids[:3]
    assert [r.id for r in second] == ids[3:]
    assert outbox.claim(db, MAIN_WEBHOOK, "n3", now=2000.0, lease_seconds=60, limit=3) == []


def test_expired_lease_is_claimable_again(db: Database) -> None:
    ids = _add(db, 2)
    outbox.claim(db, MAIN_WEBHOOK, "dead", now=2000.0, lease_seconds=60, limit=10)
    assert outbox.deliverable_ids(db, now=2030.0) == []
    assert outbox.deliverable_ids(db, now=2061.0) == ids
    again = outbox.claim(db, MAIN_WEBHOOK, "alive", now=2061.0, lease_seconds=60, limit=10)
    assert [r.id for r in again] == ids


def test_sent_released_and_failed_states(db: Database) -> None:
    a, b, c = _add(db, 3)
    outbox.claim(db, MAIN_WEBHOOK, "n1", now=2000.0, lease_seconds=60, limit=10)
    assert outbox.mark_sent(db, [a], "123456", now=2001.0, owner="n1") == 1
    assert outbox.release(db, [b], error="HTTP 503", owner="n1") == 1
    assert outbox.mark_failed(db, [c], "Invalid Form Body", owner="n1") == 1
    assert outbox.get(db, a).state == outbox.SENT
    assert outbox.get(db, b).state == outbox.PENDING
    assert outbox.get(db, c).state == outbox.FAILED
    assert outbox.count_sent_since(db, 2000.0) == 1
    assert outbox.count_by_state(db) == {outbox.SENT: 1, outbox.PENDING: 1, outbox.FAILED: 1}
    assert outbox.deliverable_ids(db, now=2002.0) == [b]


def test_concurrent_claims_never_share_an_alert(database_url: str) -> None:
    setup = Database(database_url)
    setup.migrate()
    ids = _add(setup, 60)
    taken: dict[str, list[int]] = {}

    def claimer(name: str) -> None:
        db = Database(database_url)
        got: list[int] = []
        while rows := outbox.claim(db, MAIN_WEBHOOK, name, now=2000.0, lease_seconds=60, limit=4):
            got.extend(r.id for r in rows)
        taken[name] = got
        db.close()

    threads = [threading.Thread(target=claimer, args=(f"c{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [i for got in taken.values() for i in got]
    assert sorted(everything) == ids
    setup.close()


def test_updates_change_only_alerts_the_caller_still_holds(db: Database) -> None:
    a, b, c = _add(db, 3)
    outbox.claim(db, MAIN_WEBHOOK, "n1", now=2000.0, lease_seconds=60, limit=10)
    # Another notifier (or nobody) cannot change n1's claim.
    assert outbox.mark_sent(db, [a], "m", now=2001.0, owner="n2") == 0
    assert outbox.release(db, [b], owner="n2") == 0
    assert outbox.mark_failed(db, [c], "refused", owner="n2") == 0
    assert outbox.mark_failed(db, [c], "refused") == 0  # without an owner: unclaimed alerts only
    assert [outbox.get(db, i).state for i in (a, b, c)] == [outbox.SENDING] * 3
    # n1's lease ran out and n2 took the alerts: n1's late answers change nothing any more.
    assert [r.id for r in outbox.claim(db, MAIN_WEBHOOK, "n2", now=2061.0, lease_seconds=60, limit=10)] == [a, b, c]
    assert outbox.mark_sent(db, [a, b], "late", now=2062.0, owner="n1") == 0
    assert outbox.release(db, [c], owner="n1") == 0
    assert outbox.mark_sent(db, [a, b], "m2", now=2062.0, owner="n2") == 2
    assert outbox.release(db, [c], owner="n2") == 1
    assert [outbox.get(db, i).state for i in (a, b, c)] == [outbox.SENT, outbox.SENT, outbox.PENDING]
    assert outbox.mark_sent(db, [a], "again", now=2063.0, owner="n2") == 0  # sent stays sent


def test_possible_duplicates_are_counted_by_kind(db: Database) -> None:
    ids = _add(db, 5)
    assert outbox.possible_duplicates(db) == {}
    outbox.claim(db, MAIN_WEBHOOK, "dead", now=2000.0, lease_seconds=60, limit=2)
    assert outbox.release_owner(db, "dead", "notifier died") == 2  # it died between claim and record
    outbox.claim(db, MAIN_WEBHOOK, "vanished", now=2000.0, lease_seconds=60, limit=1)
    assert [r.id for r in outbox.claim(db, MAIN_WEBHOOK, "n2", now=2100.0, lease_seconds=60, limit=1)] == ids[:1]
    outbox.claim(db, MAIN_WEBHOOK, "n3", now=2110.0, lease_seconds=60, limit=2)
    assert outbox.release(db, ids[1:3], "timeout", owner="n3", possible_duplicate=outbox.TIMED_OUT) == 2
    assert outbox.release_owner(db, "nobody", "notifier died") == 0  # nothing released, nothing counted
    counted = outbox.possible_duplicates(db)
    assert {k: (d.times, d.alerts) for k, d in counted.items()} == {
        outbox.NOTIFIER_DIED: (1, 2), outbox.LEASE_EXPIRED: (1, 1), outbox.TIMED_OUT: (1, 2)}
    assert all(d.last_at is not None and d.last_at > 0 for d in counted.values())


# -- reads take no write lock ----------------------------------------------------------------------------


def _outbox_reads(db: Database) -> None:
    """Every read-only query of the outbox, as the notifiers' polling, `status` and `alerts` run them."""
    outbox.get(db, 1)
    outbox.deliverable_ids(db, now=2000.0)
    outbox.count_sent_since(db, 0.0)
    outbox.count_by_state(db)
    outbox.waiting(db)
    outbox.listing(db)
    outbox.recent(db, limit=5)
    outbox.lease_owners(db)
    db.size_bytes()


def test_reads_do_not_wait_for_a_writer(db: Database) -> None:
    """A writer holding its transaction open (SQLite: the write lock) does not hold up reads in another
    process: reads are read transactions (SQLite: BEGIN DEFERRED; PostgreSQL: READ ONLY)."""
    _add(db, 3)
    writer = Database(db.url)
    reader = Database(db.url)
    done = threading.Event()
    with writer.tx() as tx:
        tx.execute("UPDATE alerts SET attempts = attempts + 1")  # the write lock, held
        thread = threading.Thread(target=lambda: (_outbox_reads(reader), done.set()), daemon=True)
        thread.start()
        finished = done.wait(5)  # a read waiting for the lock would wait the 30 s busy timeout
    thread.join(60)
    assert finished, "reads waited for the writer's lock"
    assert outbox.count_by_state(reader) == {outbox.PENDING: 3}
    writer.close()
    reader.close()


def test_a_read_transaction_refuses_writes_and_leaves_the_connection_writable(db: Database) -> None:
    [alert_id] = _add(db, 1)
    with pytest.raises((sqlite3.Error, psycopg.Error)):
        with db.read() as tx:
            tx.execute("UPDATE alerts SET attempts = 7")
    with db.read() as tx:
        assert tx.one("SELECT attempts FROM alerts")[0] == 0
    with db.tx() as tx:  # the same Database writes as before
        tx.execute("UPDATE alerts SET attempts = 1 WHERE id = ?", (alert_id,))
    assert outbox.get(db, alert_id) is not None
    with db.read() as tx:
        assert tx.one("SELECT attempts FROM alerts")[0] == 1


def test_status_does_not_wait_for_a_writer(make_settings: Callable[..., Settings], sqlite_url: str,
                                           redis_url: str) -> None:
    from sofamon.status import gather

    settings = make_settings(database_url=sqlite_url)
    db = Database(sqlite_url)
    db.migrate()
    _add(db, 2)
    snaps: list[Any] = []
    with db.tx() as tx:
        tx.execute("UPDATE alerts SET attempts = attempts + 1")  # a notifier's write, in progress
        thread = threading.Thread(target=lambda: snaps.append(gather(settings)), daemon=True)
        thread.start()
        thread.join(5)
        finished = bool(snaps)
    thread.join(60)
    assert finished, "status waited for the writer's lock"
    assert snaps[0].database_error is None and snaps[0].alerts_by_state == {outbox.PENDING: 2}
    db.close()
