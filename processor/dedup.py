"""Tips seen so far (table `tips`): every upcoming tip is kept with its match, deferred until it alerts.

A tip is 'deferred' from its first sighting until the atomic claim makes it 'alerted', at most once,
ever; 'deleted' when its predictor took it down first (`processor.deleted` judges that; a later
sighting brings it back). Each observation carries its fetch time (`seen_at`): an older one than the
stored changes nothing, so a replay or a late re-read never rewinds a tip's match. Also here: the
line-movement state of alerted tips and which of their events are still ahead.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

from pydantic import ValidationError

from shared import deferred, watch
from shared.models import Prediction
from shared.storage import Tx
from shared.tips import match_upcoming, tip_key

log = logging.getLogger(__name__)

DEFERRED, ALERTED, DELETED = "deferred", "alerted", "deleted"


# Rows per multi-row statement: within SQLite's oldest limit of 999 parameters.
ROWS_PER_STATEMENT = 50


def observe(tx: Tx, predictor_id: str, seen: list[tuple[str, Prediction, bool]], page_keys: list[str],
            now: float) -> None:
    """The tips of a page fetched at `now` (key, tip, whether its match is upcoming): their match's kick-off
    and status as seen, seen, and not deleted.

    A tip not stored yet is stored, deferred, when its match is upcoming, with `page_keys` (kept from that
    first sighting). An observation older than the stored one changes nothing; an alerted tip whose match
    did not change is not rewritten.
    """
    upcoming: dict[str, Prediction] = {}
    others: dict[str, Prediction] = {}
    for key, prediction, is_upcoming in seen:
        (upcoming if is_upcoming else others).setdefault(key, prediction)
    items = list(upcoming.items())
    for first in range(0, len(items), ROWS_PER_STATEMENT):
        _store(tx, predictor_id, items[first:first + ROWS_PER_STATEMENT], page_keys, now)
    if others:
        # Those stored and not alerted (a deferred tip whose match started, was postponed...): no longer waiting.
        marks = ", ".join("?" * len(others))
        for (key,) in tx.all(f"SELECT tip_key FROM tips WHERE state <> 'alerted' AND tip_key IN ({marks})",
                             list(others)):
            prediction = others[key]
            tx.execute(
                "UPDATE tips SET start_ts = ?, status = ?, seen_at = ?,"
                " state = CASE WHEN state = 'deleted' THEN 'deferred' ELSE state END"
                " WHERE tip_key = ? AND (seen_at IS NULL OR seen_at <= ?)",
                (prediction.start_date_timestamp, prediction.status.type, now, key, now),
            )


def _store(tx: Tx, predictor_id: str, items: list[tuple[str, Prediction]], page_keys: list[str], now: float) -> None:
    """One multi-row upsert (a page is one statement, not twenty round trips)."""
    params: list[object] = []
    for key, prediction in items:
        odds = prediction.odds
        params += [key, predictor_id, prediction.event_id, prediction.vote, prediction.vote_type,
                   odds.decimal_value if odds else None, odds.fractional_value if odds else None,
                   prediction.start_date_timestamp, prediction.home_team_name, prediction.away_team_name, now,
                   prediction.status.type, now, json.dumps(page_keys), prediction.model_dump_json()]
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'deferred', ?, ?, ?, ?)"] * len(items))
    tx.execute(
        "INSERT INTO tips (tip_key, predictor_id, event_id, vote, vote_type, odds_decimal, odds_fractional,"
        " start_ts, home, away, created_at, state, status, seen_at, page_keys, prediction)"
        f" VALUES {rows}"
        " ON CONFLICT (tip_key) DO UPDATE SET start_ts = excluded.start_ts, status = excluded.status,"
        " seen_at = excluded.seen_at,"
        " state = CASE WHEN tips.state = 'deleted' THEN 'deferred' ELSE tips.state END,"
        " prediction = CASE WHEN tips.state = 'alerted' THEN tips.prediction ELSE excluded.prediction END"
        " WHERE (tips.seen_at IS NULL OR tips.seen_at <= excluded.seen_at)"
        " AND (tips.state <> 'alerted' OR tips.start_ts <> excluded.start_ts"
        " OR COALESCE(tips.status, '') <> COALESCE(excluded.status, ''))",
        params,
    )


def claim(tx: Tx, key: str) -> bool:
    """Deferred -> alerted; False when the tip is not deferred (alerted already, by this or any other
    processor, or deleted). The row lock (PostgreSQL) or the write lock (SQLite) makes it once only."""
    return tx.execute(
        "UPDATE tips SET state = 'alerted', page_keys = NULL WHERE tip_key = ? AND state = 'deferred'", (key,),
    ) == 1


def claim_many(tx: Tx, keys: list[str]) -> set[str]:
    """`claim` each of these tips; returns those claimed. One statement per `ROWS_PER_STATEMENT` tips."""
    unique = list(dict.fromkeys(keys))
    claimed: set[str] = set()
    for first in range(0, len(unique), ROWS_PER_STATEMENT):
        chunk = unique[first:first + ROWS_PER_STATEMENT]
        # Joined with the keys, not `tip_key IN (...)`: given a list of keys and `state = 'deferred'`, SQLite
        # reads every deferred tip through the state index instead of looking the keys up.
        rows = ", ".join(["(?)"] * len(chunk))
        claimed.update(key for (key,) in tx.all(
            f"UPDATE tips SET state = 'alerted', page_keys = NULL FROM (VALUES {rows}) AS v"
            " WHERE tips.tip_key = v.column1 AND tips.state = 'deferred' RETURNING tips.tip_key", chunk))
    return claimed


def claim_tip(tx: Tx, predictor_id: str, prediction: Prediction, now: float) -> bool:
    """Store a tip seen alone and claim it at once (a tip whose page is not at hand)."""
    key = tip_key(predictor_id, prediction)
    observe(tx, predictor_id, [(key, prediction, True)], [key], now)
    return claim(tx, key)


def link_alerts(tx: Tx, alert_of: dict[str, int]) -> None:
    """The new-tip alert that announced each of these tips (tip key -> alert id; a line movement quotes its
    match). One statement per `ROWS_PER_STATEMENT` tips."""
    pairs = list(alert_of.items())
    for first in range(0, len(pairs), ROWS_PER_STATEMENT):
        chunk = pairs[first:first + ROWS_PER_STATEMENT]
        # VALUES columns are column1, column2 in both databases.
        rows = ", ".join(["(?, ?)"] * len(chunk))
        tx.execute(f"UPDATE tips SET alert_id = v.column2 FROM (VALUES {rows}) AS v WHERE tips.tip_key = v.column1",
                   [value for pair in chunk for value in pair])


# -- deferred tips ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """A stored tip as the deferred-tip rules need it."""

    tip_key: str
    predictor_id: str
    event_id: int
    state: str
    status: str | None
    start_ts: int
    seen_at: float | None
    page_keys: list[str]
    raw: str | None  # the tip as Sofascore gave it

    def prediction(self) -> Prediction | None:
        """The stored tip; None when there is none, or it no longer validates (then it cannot alert from storage)."""
        if not self.raw:
            return None
        try:
            return Prediction.model_validate_json(self.raw)
        except ValidationError:
            log.warning("stored tip %s no longer validates; it cannot alert from storage", self.tip_key[:80])
            return None

    def waiting(self, now: float, grace_minutes: float) -> bool:
        """Deferred and its match still upcoming: in the fetcher's set of tips to refresh when due."""
        return self.state == DEFERRED and match_upcoming(self.status, self.start_ts, now, grace_minutes)

    @property
    def member(self) -> str:
        return deferred.member(self.event_id, self.tip_key)


_STORED = "tip_key, predictor_id, event_id, state, status, start_ts, seen_at, page_keys, prediction"


def _later_than(instant: float) -> int:
    """The bound of `start_ts > ?` for a kick-off later than `instant`: a whole second (kick-offs are), as
    `start_ts > instant` is `start_ts > floor(instant)`. PostgreSQL compares a BIGINT column with a float
    bound by casting every row's value, which no index serves."""
    return math.floor(instant)


def _stored(row: tuple) -> Stored:
    key, predictor_id, event_id, state, status, start_ts, seen_at, page_keys, raw = row
    return Stored(key, predictor_id, int(event_id), state, status, int(start_ts),
                  float(seen_at) if seen_at is not None else None, json.loads(page_keys) if page_keys else [], raw)


def stored(tx: Tx, keys: list[str]) -> list[Stored]:
    if not keys:
        return []
    marks = ", ".join("?" * len(keys))
    return [_stored(row) for row in tx.all(f"SELECT {_STORED} FROM tips WHERE tip_key IN ({marks})", keys)]


def deferred_of(tx: Tx, predictor_id: str, now: float, grace_minutes: float) -> list[Stored]:
    """A predictor's deferred tips whose match has not kicked off more than the grace period ago."""
    return [_stored(row) for row in tx.all(
        f"SELECT {_STORED} FROM tips WHERE state = 'deferred' AND predictor_id = ? AND start_ts > ?"
        " ORDER BY created_at, tip_key", (predictor_id, _later_than(now - grace_minutes * 60)))]


def on_event(tx: Tx, event_id: int) -> list[Stored]:
    """Every stored tip on an event, of every predictor, in the order they were first seen."""
    return [_stored(row) for row in tx.all(
        f"SELECT {_STORED} FROM tips WHERE event_id = ? ORDER BY created_at, tip_key", (event_id,))]


def refresh(tx: Tx, key: str, start_ts: int, status: str, now: float) -> bool:
    """The match as refreshed at `now`; False (nothing changed) when the tip was observed later than that."""
    return tx.execute(
        "UPDATE tips SET start_ts = ?, status = ?, seen_at = ? WHERE tip_key = ? AND (seen_at IS NULL OR seen_at <= ?)",
        (start_ts, status, now, key, now),
    ) == 1


def mark_deleted(tx: Tx, key: str, now: float) -> bool:
    """A deferred tip its predictor deleted, as judged from a page fetched at `now` (later than its last sighting)."""
    return tx.execute(
        "UPDATE tips SET state = 'deleted', seen_at = ? WHERE tip_key = ? AND state = 'deferred'"
        " AND (seen_at IS NULL OR seen_at < ?)",
        (now, key, now),
    ) == 1


def waiting(tx: Tx, now: float, grace_minutes: float) -> dict[str, float]:
    """Every waiting deferred tip (`Stored.waiting`) as a member of `shared.deferred`'s set -> kick-off."""
    rows = tx.all("SELECT event_id, tip_key, status, start_ts FROM tips WHERE state = 'deferred' AND start_ts > ?",
                  (_later_than(now - grace_minutes * 60),))
    return {deferred.member(int(event), key): float(start) for event, key, status, start in rows
            if match_upcoming(status, start, now, grace_minutes)}


# -- alerted tips: line movement ----------------------------------------------------------------------


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
        " home, away, movement_armed, alert_id FROM tips WHERE event_id = ? AND state = 'alerted'"
        " ORDER BY created_at, tip_key",
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
    rows = tx.all("SELECT event_id, MAX(start_ts) FROM tips WHERE state = 'alerted' AND start_ts > ?"
                  " GROUP BY event_id", (_later_than(watch.cutoff(now)),))
    return {int(event_id): int(start) for event_id, start in rows}
