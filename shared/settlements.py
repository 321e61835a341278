"""An alerted tip's result and closing price: the only reader and writer of those columns of `tips`.

The processor records a result once (a finished or canceled match seen on a predictor's page or in the
match's own record) and the closing price as the last price of the tip's market and pick observed before
kick-off; re-reads and replays change neither (a result is never overwritten, an older price never replaces
a newer one). `sofamon report` reads them back as `TipRecord`s.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.scorecard import Result, TipRecord
from shared.storage import Database, Tx


# Rows per statement: two parameters each, within SQLite's oldest limit of 999 parameters.
ROWS_PER_STATEMENT = 400


def record_results(tx: Tx, results: Iterable[tuple[str, Result]], at: float) -> int:
    """Settle alerted tips (tip key, result) still open; returns how many were settled now.

    A page's finished tips come back on every read of it: one statement per page, joined with the keys (a
    lookup by primary key), whatever is already settled.
    """
    pairs = list(dict(results).items())
    settled = 0
    for first in range(0, len(pairs), ROWS_PER_STATEMENT):
        chunk = pairs[first:first + ROWS_PER_STATEMENT]
        rows = ", ".join(["(?, ?)"] * len(chunk))
        # VALUES columns are column1, column2 in both databases.
        settled += tx.execute(f"UPDATE tips SET result = v.column2, settled_at = ? FROM (VALUES {rows}) AS v"
                              " WHERE tips.tip_key = v.column1 AND tips.state = 'alerted' AND tips.result IS NULL",
                              [at, *(value for pair in chunk for value in pair)])
    return settled


def void_event(tx: Tx, event_id: int, at: float) -> int:
    """Every open alerted tip on a canceled match is void."""
    return tx.execute("UPDATE tips SET result = 'void', settled_at = ? WHERE event_id = ? AND state = 'alerted'"
                      " AND result IS NULL", (at, event_id))


def record_closing(tx: Tx, tip_key: str, decimal: float, observed_at: float) -> bool:
    """A price of the tip's pick seen at `observed_at`: its closing price if seen before kick-off and later than
    the one kept."""
    return tx.execute("UPDATE tips SET closing_decimal = ?, closing_at = ? WHERE tip_key = ? AND ? < start_ts"
                      " AND (closing_at IS NULL OR closing_at < ?)", (decimal, observed_at, tip_key, observed_at,
                                                                        observed_at)) > 0


@dataclass(frozen=True)
class Scored:
    """One alerted tip of the scorecard: whose, and its record."""

    predictor_id: str
    nickname: str | None
    record: TipRecord


# A tip alerts before its kick-off or within the grace period after it (minutes): one alerted since a time
# kicks off no earlier than a day before it. That bound lets the kick-off indexes serve the window, so the
# cost follows the tips in the window, not every tip ever stored.
KICKOFF_BEFORE_ALERT_MAX = 86_400

_SCORED = ("SELECT t.predictor_id, p.nickname, t.odds_decimal, t.result, t.closing_decimal FROM tips t"
           " JOIN alerts a ON a.id = t.alert_id LEFT JOIN predictors p ON p.id = t.predictor_id"
           " WHERE t.state = 'alerted' AND t.start_ts >= ? AND a.created_at >= ?")


def _window(since: float) -> list[object]:
    # Whole seconds: PostgreSQL compares a BIGINT column with a float bound by casting every row (no index).
    return [int(since) - KICKOFF_BEFORE_ALERT_MAX, since]


def _scored(rows: Sequence[tuple]) -> list[Scored]:
    return [Scored(pid, nickname, TipRecord(odds, result, closing)) for pid, nickname, odds, result, closing in rows]


def alerted_since(db: Database, since: float, predictor_id: str | None = None) -> list[Scored]:
    """The tips alerted since `since` (by the time of their alert), of one predictor or of all."""
    sql, params = _SCORED, _window(since)
    if predictor_id is not None:
        sql, params = sql + " AND t.predictor_id = ?", [*params, predictor_id]
    with db.read() as tx:
        return _scored(tx.all(sql, params))
