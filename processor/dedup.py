"""Tips alerted so far (table `tips`): a tip's identity, the atomic claim that alerts each tip at most
once, ever, the line-movement state of alerted tips, and which of their events are still ahead."""
from __future__ import annotations

from dataclasses import dataclass

from shared import watch
from shared.models import Prediction
from shared.storage import Tx
from shared.tips import tip_key


def claim_tip(tx: Tx, predictor_id: str, prediction: Prediction, now: float) -> bool:
    """Record the tip as alerted; False when it already was (by this or any other processor)."""
    odds = prediction.odds
    inserted = tx.execute(
        "INSERT INTO tips (tip_key, predictor_id, event_id, vote, vote_type, odds_decimal, odds_fractional,"
        " start_ts, home, away, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (tip_key) DO NOTHING",
        (
            tip_key(predictor_id, prediction),
            predictor_id,
            prediction.event_id,
            prediction.vote,
            prediction.vote_type,
            odds.decimal_value if odds else None,
            odds.fractional_value if odds else None,
            prediction.start_date_timestamp,
            prediction.home_team_name,
            prediction.away_team_name,
            now,
        ),
    )
    return inserted == 1


def link_alert(tx: Tx, tip_keys: list[str], alert_id: int) -> None:
    """The new-tip alert that announced these tips (a line movement quotes its match)."""
    for key in tip_keys:
        tx.execute("UPDATE tips SET alert_id = ? WHERE tip_key = ?", (alert_id, key))


@dataclass(frozen=True)
class AlertedTip:
    tip_key: str
    predictor_id: str
    event_id: int
    vote: str
    vote_type: int | None
    odds_decimal: float | None
    odds_fractional: str | None
    start_ts: int
    home: str
    away: str
    armed: bool
    alert_id: int | None  # its new-tip alert


def tips_on_event(tx: Tx, event_id: int) -> list[AlertedTip]:
    rows = tx.all(
        "SELECT tip_key, predictor_id, event_id, vote, vote_type, odds_decimal, odds_fractional, start_ts,"
        " home, away, movement_armed, alert_id FROM tips WHERE event_id = ? ORDER BY created_at, tip_key",
        (event_id,),
    )
    return [_alerted(*row) for row in rows]


def _alerted(key: str, predictor_id: str, event_id: int, vote: str, vote_type: int | None,
             odds_decimal: float | None, odds_fractional: str | None, start_ts: int, home: str, away: str,
             armed: int, alert_id: int | None) -> AlertedTip:
    return AlertedTip(key, predictor_id, event_id, vote, vote_type, odds_decimal, odds_fractional, start_ts,
                      home, away, bool(armed), int(alert_id) if alert_id is not None else None)


def set_armed(tx: Tx, tip_key: str, armed: bool) -> bool:
    """Flip the movement flag; False when another processor flipped it first."""
    return tx.execute(
        "UPDATE tips SET movement_armed = ? WHERE tip_key = ? AND movement_armed = ?",
        (int(armed), tip_key, int(not armed)),
    ) == 1


def upcoming_events(tx: Tx, now: float) -> dict[int, int]:
    """Events with an alerted tip that has not kicked off (`shared.watch`'s rule): their odds are worth polling."""
    rows = tx.all("SELECT event_id, MAX(start_ts) FROM tips WHERE start_ts > ? GROUP BY event_id",
                  (watch.cutoff(now),))
    return {int(event_id): int(start) for event_id, start in rows}
