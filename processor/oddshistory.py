"""Odds history (table `odds_history`): every price observed for a watched event, a row each time it changes.

Ordered by when Sofascore's data was observed (`observed_at`, the record's fetch time), never by
arrival: a record processed late or re-injected by a replay fills in the history at its own time;
it never becomes the latest price.
"""
from __future__ import annotations

from processor.movement import Price
from shared.prices import decimal_of
from shared.storage import Tx

ChoiceKey = tuple[int, str | None, str]  # market id, choice group, choice


def superseded(tx: Tx, event_id: int, observed_at: float) -> bool:
    """Whether prices of this event observed later than `observed_at` are already recorded."""
    return tx.one("SELECT 1 FROM odds_history WHERE event_id = ? AND observed_at > ? LIMIT 1",
                  (event_id, observed_at)) is not None


def record(tx: Tx, event_id: int, prices: list[Price], observed_at: float, *, later: bool | None = None) -> None:
    """A row for each price that differs from the one in force at `observed_at` for its choice.

    In force: the last one observed at or before that time. Every price ever offered is kept, without
    a row per poll for prices that did not move. A late price equal to the change recorded next moves
    that row back to when the price was first seen, so consecutive rows of a choice always differ.
    `later`: whether prices observed after `observed_at` are recorded (`superseded`), when the caller knows.
    """
    before = {key: fractional for key, (_row, fractional) in _nearest(tx, event_id, observed_at, later=False).items()}
    if later is None:
        later = superseded(tx, event_id, observed_at)
    after = _nearest(tx, event_id, observed_at, later=True) if later else {}
    new: list[Price] = []
    for price in prices:
        key = (price.market_id, price.choice_group, price.choice)
        if before.get(key) == price.fractional:
            continue
        following = after.get(key)
        if following is not None and following[1] == price.fractional:
            tx.execute("UPDATE odds_history SET observed_at = ? WHERE id = ?", (observed_at, following[0]))
            continue
        new.append(price)
    _insert(tx, event_id, new, observed_at)


# Prices per multi-row INSERT (7 values each): within SQLite's oldest limit of 999 parameters. An event's
# first odds are all new: a hundred prices or more.
ROWS_PER_INSERT = 100


def _insert(tx: Tx, event_id: int, prices: list[Price], observed_at: float) -> None:
    for first in range(0, len(prices), ROWS_PER_INSERT):
        chunk = prices[first:first + ROWS_PER_INSERT]
        params: list[object] = []
        for price in chunk:
            params += [event_id, price.market_id, price.choice_group, price.choice, price.fractional,
                       float(price.decimal), observed_at]
        rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        tx.execute("INSERT INTO odds_history (event_id, market_id, choice_group, choice, fractional, decimal,"
                   f" observed_at) VALUES {rows}", params)


def latest(tx: Tx, event_id: int) -> dict[ChoiceKey, str]:
    """The latest price of each choice of an event, by observation time."""
    return {key: fractional for key, (_row, fractional) in _nearest(tx, event_id, float("inf"), later=False).items()}


def latest_prices(tx: Tx, event_id: int) -> list[Price]:
    """The latest price of each choice of an event as `Price`s (none before its odds were first polled)."""
    latest_rows = _nearest(tx, event_id, float("inf"), later=False).items()
    return [Price(market_id, group, choice, fractional, decimal)
            for (market_id, group, choice), (_row, fractional) in latest_rows
            if (decimal := decimal_of(fractional)) is not None]


def _nearest(tx: Tx, event_id: int, observed_at: float, *, later: bool) -> dict[ChoiceKey, tuple[int, str]]:
    """Per choice, the row (id, fractional) observed last at or before `observed_at`, or first after it."""
    condition, order = ("observed_at > ?", "ASC") if later else ("observed_at <= ?", "DESC")
    rows = tx.all(
        "SELECT id, market_id, choice_group, choice, fractional FROM ("
        " SELECT id, market_id, choice_group, choice, fractional, ROW_NUMBER() OVER ("
        f"  PARTITION BY market_id, choice_group, choice ORDER BY observed_at {order}, id {order}) AS n"
        f" FROM odds_history WHERE event_id = ? AND {condition}) AS nearest WHERE n = 1",
        (event_id, observed_at),
    )
    return {(int(m), g, c): (int(row_id), f) for row_id, m, g, c, f in rows}
