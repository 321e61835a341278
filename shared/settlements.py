"""An alerted tip's result and closing price: the only reader and writer of those columns of `tips`.

The processor records a result once (a finished or canceled match seen on a predictor's page or in the
match's own record) and the closing price as the last price of the tip's market and pick observed before
kick-off; re-reads and replays change neither (a result is never overwritten, an older price never replaces
a newer one). `sofamon report` reads them back as `TipRecord`s.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.scorecard import Figures, Result, Scored, Tally, TipRecord
from shared.storage import Database, Tx


# Rows per statement: two parameters each, within SQLite's oldest limit of 999 parameters.
ROWS_PER_STATEMENT = 400


# What a settling statement returns of each tip it settled, for its predictor's record.
_SETTLED = " RETURNING tips.predictor_id, tips.odds_decimal, tips.result, tips.closing_decimal"


def record_results(tx: Tx, results: Iterable[tuple[str, Result]], at: float) -> int:
    """Settle alerted tips (tip key, result) still open; returns how many were settled now.

    A page's finished tips come back on every read of it: one statement per page, joined with the keys (a
    lookup by primary key), whatever is already settled.
    """
    pairs = list(dict(results).items())
    settled: list[tuple] = []
    for first in range(0, len(pairs), ROWS_PER_STATEMENT):
        chunk = pairs[first:first + ROWS_PER_STATEMENT]
        rows = ", ".join(["(?, ?)"] * len(chunk))
        # VALUES columns are column1, column2 in both databases.
        settled += tx.all(f"UPDATE tips SET result = v.column2, settled_at = ? FROM (VALUES {rows}) AS v"
                          " WHERE tips.tip_key = v.column1 AND tips.state = 'alerted' AND tips.result IS NULL"
                          + _SETTLED, [at, *(value for pair in chunk for value in pair)])
    _add_to_records(tx, settled)
    return len(settled)


def void_event(tx: Tx, event_id: int, at: float) -> int:
    """Every open alerted tip on a canceled match is void."""
    settled = tx.all("UPDATE tips SET result = 'void', settled_at = ? WHERE event_id = ? AND state = 'alerted'"
                     " AND result IS NULL" + _SETTLED, (at, event_id))
    _add_to_records(tx, settled)
    return len(settled)


def record_closing(tx: Tx, tip_key: str, decimal: float, observed_at: float) -> bool:
    """A price of the tip's pick seen at `observed_at`: its closing price if seen before kick-off and later than
    the one kept. A settled tip's closing price is final: its predictor's record counts it already."""
    return tx.execute("UPDATE tips SET closing_decimal = ?, closing_at = ? WHERE tip_key = ? AND ? < start_ts"
                      " AND result IS NULL AND (closing_at IS NULL OR closing_at < ?)",
                      (decimal, observed_at, tip_key, observed_at, observed_at)) > 0


def open_after_kickoff(tx: Tx, kicked_off_before: float, kicked_off_since: float) -> dict[tuple[int, str], int]:
    """(event id, predictor id) -> kick-off of alerted tips still open whose match kicked off in the window."""
    rows = tx.all("SELECT event_id, predictor_id, MIN(start_ts) FROM tips WHERE state = 'alerted' AND result IS NULL"
                  " AND start_ts >= ? AND start_ts < ? GROUP BY event_id, predictor_id",
                  (int(kicked_off_since), int(kicked_off_before)))
    return {(int(event), pid): int(start) for event, pid, start in rows}


# -- each predictor's record (table predictor_records), the running sums of shared/scorecard.Tally --------------
_TALLIED = ("won", "lost", "void", "staked", "returned", "closing_n", "clv_sum", "beat_n")


def _add_to_records(tx: Tx, settled: Sequence[tuple]) -> None:
    """Tips just settled (predictor, odds, result, closing) added to their predictors' records: one statement
    per predictor, adding to the sums (two processors settling at once add, never overwrite)."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    for predictor_id, odds, result, closing in settled:
        tallies[predictor_id].add(TipRecord(odds, result, closing))
    columns = ", ".join(_TALLIED)
    sums = ", ".join(f"{c} = predictor_records.{c} + excluded.{c}" for c in _TALLIED)
    for predictor_id, tally in tallies.items():
        tx.execute(f"INSERT INTO predictor_records (predictor_id, {columns}) VALUES (?{', ?' * len(_TALLIED)})"
                   f" ON CONFLICT (predictor_id) DO UPDATE SET {sums}",
                   [predictor_id, *(getattr(tally, c) for c in _TALLIED)])


def record_of(tx: Tx, predictor_id: str) -> Figures | None:
    """A predictor's record over their settled alerted tips (`alerted` counts those only); None before any."""
    row = tx.one(f"SELECT {', '.join(_TALLIED)} FROM predictor_records WHERE predictor_id = ?", (predictor_id,))
    if row is None:
        return None
    tally = Tally(**dict(zip(_TALLIED, row)))
    tally.alerted = tally.won + tally.lost + tally.void
    return tally.figures()


# A tip alerts before its kick-off or within the grace period after it (minutes): one alerted since a time
# kicks off no earlier than a day before it. That bound lets the kick-off indexes serve the window, so the
# cost follows the tips in the window, not every tip ever stored.
KICKOFF_BEFORE_ALERT_MAX = 86_400

# A tip's closing price is known once its match kicked off: before, it is only the latest price.
_SCORED = ("SELECT t.predictor_id, p.nickname, t.odds_decimal, t.result,"
           " CASE WHEN t.start_ts <= ? THEN t.closing_decimal END FROM tips t"
           " JOIN alerts a ON a.id = t.alert_id LEFT JOIN predictors p ON p.id = t.predictor_id"
           " WHERE t.state = 'alerted' AND t.start_ts >= ? AND a.created_at >= ?")


def _window(since: float, now: float) -> list[object]:
    # Whole seconds: PostgreSQL compares a BIGINT column with a float bound by casting every row (no index).
    return [int(now), int(since) - KICKOFF_BEFORE_ALERT_MAX, since]


def _scored(rows: Sequence[tuple]) -> list[Scored]:
    return [Scored(pid, nickname, TipRecord(odds, result, closing)) for pid, nickname, odds, result, closing in rows]


def alerted_since(db: Database, since: float, now: float, predictor_id: str | None = None) -> list[Scored]:
    """The tips alerted since `since` (by the time of their alert), of one predictor or of all, as of `now`."""
    sql, params = _SCORED, _window(since, now)
    if predictor_id is not None:
        sql, params = sql + " AND t.predictor_id = ?", [*params, predictor_id]
    with db.read() as tx:
        return _scored(tx.all(sql, params))


@dataclass(frozen=True)
class Settled:
    """An alerted tip settled in a window (the daily digest's day): whose, which match and pick, its prices and
    result."""

    predictor_id: str
    nickname: str | None
    home: str
    away: str
    vote: str
    vote_type: int | None
    odds: float | None
    closing: float | None
    result: Result


def settled_between(db: Database, start: float, end: float) -> list[Settled]:
    """The alerted tips settled from `start` to before `end` (by when their result was recorded), by kick-off.

    Only alerted tips are ever settled, so their state is not asked: the time alone picks them, through its own
    index (with the state too, SQLite would rather read every alerted tip through the kick-off index). A settled
    tip's closing price is final (`record_closing`), so it is given as stored."""
    with db.read() as tx:
        rows = tx.all("SELECT t.predictor_id, p.nickname, t.home, t.away, t.vote, t.vote_type, t.odds_decimal,"
                      " t.closing_decimal, t.result FROM tips t LEFT JOIN predictors p ON p.id = t.predictor_id"
                      " WHERE t.settled_at >= ? AND t.settled_at < ?"
                      " ORDER BY t.start_ts, t.tip_key", (start, end))
    return [Settled(*row) for row in rows]
