"""Who has been part of which consensus (table `consensus_members`): the only reader and writer of it.

A row per match, market, pick (case folded) and predictor. A predictor joins a consensus when the processor
finds it (processor/consensus.py) and waits there, `alert_id` NULL, until the match's crowd votes come in;
the votes record claims the waiting members of the match (`alert_id` 0 while the alert is built) and the
consensus alert then holds them (`alert_id` its id). A member is announced once: a re-read, a replay or a
second processor finds the row there and adds nobody.
"""
from __future__ import annotations

from collections.abc import Iterable

from processor.consensus import Consensus
from shared.storage import Tx

# (market, folded pick, predictor id)
Member = tuple[int, str, str]
BEING_ANNOUNCED = 0  # alert_id while the claiming transaction builds the alert


def known(tx: Tx, event_id: int) -> set[Member]:
    """Every member of a consensus on the match, announced or waiting."""
    rows = tx.all("SELECT market, pick, predictor_id FROM consensus_members WHERE event_id = ?", (event_id,))
    return {(int(market), pick, pid) for market, pick, pid in rows}


def add_waiting(tx: Tx, event_id: int, due: Iterable[Consensus], now: float) -> int:
    """The members who just joined, waiting for the crowd votes; returns how many were added now."""
    rows = [(event_id, c.market, c.pick.casefold(), pid, now) for c in due if c.market is not None for pid in c.joined]
    return sum(tx.execute("INSERT INTO consensus_members (event_id, market, pick, predictor_id, created_at)"
                          " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", row) for row in rows)


def claim_waiting(tx: Tx, event_id: int) -> list[Member]:
    """The match's waiting members, taken for one announcement (a second processor finds none)."""
    rows = tx.all("UPDATE consensus_members SET alert_id = ? WHERE alert_id IS NULL AND event_id = ?"
                  " RETURNING market, pick, predictor_id", (BEING_ANNOUNCED, event_id))
    return sorted({(int(market), pick, pid) for market, pick, pid in rows})


def of_pick(tx: Tx, event_id: int, market: int, pick: str) -> list[str]:
    """Every member of one pick's consensus (predictor ids)."""
    rows = tx.all("SELECT predictor_id FROM consensus_members WHERE event_id = ? AND market = ? AND pick = ?",
                  (event_id, market, pick))
    return [pid for (pid,) in rows]


def announced(tx: Tx, event_id: int, market: int, pick: str, alert_id: int) -> None:
    tx.execute("UPDATE consensus_members SET alert_id = ? WHERE event_id = ? AND market = ? AND pick = ?"
               " AND alert_id = ?", (alert_id, event_id, market, pick, BEING_ANNOUNCED))


def drop_waiting(tx: Tx, event_id: int) -> int:
    """The match kicked off before its votes came: its waiting members are never announced."""
    return tx.execute("DELETE FROM consensus_members WHERE alert_id IS NULL AND event_id = ?", (event_id,))


def waiting_events(tx: Tx) -> list[int]:
    """Matches with members waiting for their votes (the minute's sync asks for them again)."""
    return [int(event) for (event,) in tx.all("SELECT DISTINCT event_id FROM consensus_members"
                                               " WHERE alert_id IS NULL")]
