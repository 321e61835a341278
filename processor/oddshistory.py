"""Odds history (table `odds_history`): every price observed for a watched event, a row each time it changes."""
from __future__ import annotations

from processor.movement import Price
from shared.storage import Tx


def record(tx: Tx, event_id: int, prices: list[Price], now: float) -> None:
    """A row for each price that differs from the last one recorded for its choice.

    Every price ever offered is kept, without a row per poll for prices that did not move.
    """
    rows = tx.all(
        "SELECT market_id, choice_group, choice, fractional FROM odds_history WHERE id IN"
        " (SELECT MAX(id) FROM odds_history WHERE event_id = ? GROUP BY market_id, choice_group, choice)",
        (event_id,),
    )
    latest = {(int(m), g, c): f for m, g, c, f in rows}
    for price in prices:
        if latest.get((price.market_id, price.choice_group, price.choice)) == price.fractional:
            continue
        tx.execute(
            "INSERT INTO odds_history (event_id, market_id, choice_group, choice, fractional, decimal, observed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, price.market_id, price.choice_group, price.choice, price.fractional, float(price.decimal), now),
        )
