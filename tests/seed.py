"""History for a database to carry: many old tips, alerts and prices.

What a monitor that has run for a long time holds: tips of its predictors (`seed-0`, `seed-1`, ...) on
matches long over (most alerted, some deferred and never alerted, some deleted), their alerts sent, the
prices of their events (events of their own, from `FIRST_EVENT`). Made in the database by a few
INSERT ... SELECT over a series of numbers (generate_series; a recursive CTE on SQLite), so a million
rows take seconds. Used by the index test and by `bench/processing.py`.
"""
from __future__ import annotations

from shared.storage import Database

# Ids of the history's events: beyond any fixture's or benchmark's.
FIRST_EVENT = 9_000_000_000


def predictor(n: int) -> str:
    """The id of the history's `n`th predictor."""
    return f"seed-{n}"


def _rows(db: Database, count: int) -> tuple[str, str]:
    """(prefix, source) of an INSERT ... SELECT over n(i), i from 0 to `count` - 1."""
    if db.dialect == "postgresql":
        return "", f"generate_series(0, {int(count) - 1}) AS n(i)"
    return f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < {int(count)}) ", "n"


SETTLEMENT_MIGRATION = 8  # tips.result


def seed_history(db: Database, tips: int, now: float, predictors: int = 1000) -> None:
    """`tips` tips of `predictors` predictors on matches over before `now` (two per event; one in twenty
    deferred and never alerted, one deleted, the others alerted and settled), an alert per alerted tip, and as
    many prices."""
    prefix, source = _rows(db, tips)
    with db.tx() as tx:
        tx.execute(
            f"{prefix}INSERT INTO tips (tip_key, predictor_id, event_id, vote, vote_type, odds_decimal,"
            " odds_fractional, start_ts, home, away, movement_armed, created_at, state, status, seen_at, prediction)"
            f" SELECT 'seed:' || i, 'seed-' || (i % {int(predictors)}), {FIRST_EVENT} + i / 2, '1', 1, 2.0, '1/1',"
            " ? - 86400 - i * 30, 'Home', 'Away', 1, ? - 90000 - i * 30,"
            " CASE i % 20 WHEN 0 THEN 'deferred' WHEN 1 THEN 'deleted' ELSE 'alerted' END,"
            " CASE i % 20 WHEN 0 THEN 'notstarted' ELSE 'finished' END, ? - 90000 - i * 30, '{}'"
            f" FROM {source}",
            (int(now), now, now),
        )
        tx.execute(
            f"{prefix}INSERT INTO alerts (kind, webhook, predictor_id, event_id, payload, state, created_at,"
            " sent_at, message_id, attempts)"
            f" SELECT 'new_tip', 'main', 'seed-' || (i % {int(predictors)}), {FIRST_EVENT} + i / 2, '{{}}', 'sent',"
            " ? - 90000 - i * 30, ? - 89990 - i * 30, 'm' || i, 1"
            f" FROM {source} WHERE i % 20 > 1",
            (now, now),
        )
        tx.execute(
            f"{prefix}INSERT INTO odds_history (event_id, market_id, choice_group, choice, fractional, decimal,"
            " observed_at)"
            f" SELECT {FIRST_EVENT} + i / 6, 1, NULL, CASE i % 3 WHEN 0 THEN '1' WHEN 1 THEN 'X' ELSE '2' END,"
            " '1/1', 2.0, ? - 90000 - i * 10"
            f" FROM {source}",
            (now,),
        )
        tx.execute(
            f"{prefix}INSERT INTO predictors (id, nickname, slug, stats, updated_at)"
            f" SELECT 'seed-' || i, 'seed' || i, NULL, '{{}}', ? FROM {source} WHERE i < {int(predictors)}",
            (now,),
        )
        if tx.one("SELECT MAX(version) FROM schema_version")[0] >= SETTLEMENT_MIGRATION:
            # Their matches are over: settled, as the processor would have done.
            tx.execute("UPDATE tips SET result = CASE event_id % 2 WHEN 0 THEN 'won' ELSE 'lost' END"
                       " WHERE state = 'alerted' AND tip_key LIKE 'seed:%'")
    if db.dialect == "postgresql":
        # As autovacuum would have done by then: the planner knows the tables' sizes.
        with db.tx() as tx:
            tx.execute("ANALYZE")
