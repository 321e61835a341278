"""The outbox: every alert is a row with its delivery state, so nothing is lost between processes.

A notifier claims alerts (state "sending", `lease_owner`, `lease_until`) before posting them; the
updates that end a claim (mark sent, release, mark failed) change only alerts the caller still holds,
so a notifier whose claim ran out and was taken over can no longer overwrite the new holder's work.

Discord's webhooks have no idempotency key: the few ways an alert can be posted twice are counted
here by kind (`possible_duplicates`), in the same transaction that notices them, for `sofamon status`.
"""
from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from shared.alerts import Alert, DigestAlert

if TYPE_CHECKING:  # for annotations only: `sofamon`'s parser loads this module for every command (the fetcher's too)
    from shared.storage import Database, Tx

PENDING, SENDING, SENT, FAILED, DEAD = "pending", "sending", "sent", "failed", "dead"
# Printed to the notifier's log because its webhook has no URL (dry run): done, but never posted.
DRY_RUN = "dry_run"

# Why alerts may have been posted twice (kinds of `possible_duplicates`).
NOTIFIER_DIED = "notifier-died"  # its notifier died after claiming them, maybe after Discord posted them
LEASE_EXPIRED = "lease-expired"  # its claim ran out (a notifier vanished, on another host) and another took them
TIMED_OUT = "timeout"  # Discord did not answer in time: it may have posted the message all the same
CLAIM_LOST = "claim-lost"  # posted, but another notifier had taken them before the sent state was recorded

_ALERT = TypeAdapter(Alert)


@dataclass(frozen=True)
class OutboxRow:
    id: int
    webhook: str
    alert: Alert
    state: str
    created_at: float


def job_id(alert_id: int) -> str:
    """The RQ job id of an alert: one job id per alert makes enqueueing idempotent."""
    return f"alert-{alert_id}"


def alert_id_of(job: str) -> int:
    return int(job.removeprefix("alert-"))


def insert(tx: Tx, alert: Alert, *, webhook: str, created_at: float,
           predictor_id: str | None = None, event_id: int | None = None) -> int:
    row = tx.one(
        "INSERT INTO alerts (kind, webhook, predictor_id, event_id, payload, state, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (alert.kind, webhook, predictor_id, event_id, _ALERT.dump_json(alert).decode(), PENDING, created_at),
    )
    assert row is not None
    return int(row[0])


# Alerts per multi-row INSERT (7 values each): within SQLite's oldest limit of 999 parameters.
ROWS_PER_INSERT = 100


def insert_per_event(tx: Tx, alerts: Mapping[int, Alert], *, webhook: str, created_at: float,
                     predictor_id: str) -> dict[int, int]:
    """Insert a predictor's alerts, one per event (event id -> alert), in one statement per `ROWS_PER_INSERT`;
    returns event id -> alert id. (RETURNING promises no order: the event, unique here, tells the rows apart.)"""
    items = list(alerts.items())
    ids: dict[int, int] = {}
    for first in range(0, len(items), ROWS_PER_INSERT):
        chunk = items[first:first + ROWS_PER_INSERT]
        params: list[object] = []
        for event_id, alert in chunk:
            params += [alert.kind, webhook, predictor_id, event_id, _ALERT.dump_json(alert).decode(), PENDING,
                       created_at]
        rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        for alert_id, event_id in tx.all(
                "INSERT INTO alerts (kind, webhook, predictor_id, event_id, payload, state, created_at)"
                f" VALUES {rows} RETURNING id, event_id", params):
            ids[int(event_id)] = int(alert_id)
    return ids


def insert_once(tx: Tx, alert: Alert, *, webhook: str, created_at: float, source: str) -> int | None:
    """Insert an alert unless one from the same source exists (then None): for sources read more than once."""
    row = tx.one(
        "INSERT INTO alerts (kind, webhook, payload, state, created_at, source) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (source) DO NOTHING RETURNING id",
        (alert.kind, webhook, _ALERT.dump_json(alert).decode(), PENDING, created_at, source),
    )
    return int(row[0]) if row else None


def digest_made(tx: Tx, day: str) -> bool:
    """Whether the daily digest of `day` (`2026-11-21`) is in the outbox already (table `digests`)."""
    return tx.one("SELECT 1 FROM digests WHERE day = ?", (day,)) is not None


def insert_digest(tx: Tx, alert: DigestAlert, *, webhook: str, created_at: float) -> int | None:
    """Insert the daily digest of its day unless that day's is in already (then None): two processors, on two
    hosts, send it once. The day's row is taken first, in the caller's transaction: the other processor's
    insert waits for it and then does nothing."""
    if tx.one("INSERT INTO digests (day, created_at) VALUES (?, ?) ON CONFLICT (day) DO NOTHING RETURNING day",
              (alert.day, created_at)) is None:
        return None
    alert_id = insert(tx, alert, webhook=webhook, created_at=created_at)
    tx.execute("UPDATE digests SET alert_id = ? WHERE day = ?", (alert_id, alert.day))
    return alert_id


def _row(values: tuple) -> OutboxRow:
    alert_id, webhook, payload, state, created_at = values
    return OutboxRow(int(alert_id), webhook, _ALERT.validate_json(payload), state, float(created_at))


def find(tx: Tx, alert_id: int) -> OutboxRow | None:
    """An alert as stored, inside a transaction the caller holds (e.g. a line movement quoting its tip's alert)."""
    values = tx.one("SELECT id, webhook, payload, state, created_at FROM alerts WHERE id = ?", (alert_id,))
    return _row(values) if values else None


def get(db: Database, alert_id: int) -> OutboxRow | None:
    with db.read() as tx:
        return find(tx, alert_id)


def listing(db: Database) -> list[tuple[Any, ...]]:
    """Every alert, oldest first, as (id, kind, predictor id, event id, payload JSON): what `sofamon replay` lists."""
    with db.read() as tx:
        return tx.all("SELECT id, kind, predictor_id, event_id, payload FROM alerts ORDER BY id")


def recent(db: Database, *, limit: int, since: float | None = None, until: float | None = None,
           states: Collection[str] = (), kinds: Collection[str] = (), predictors: Collection[str] = (),
           ) -> tuple[list[tuple[Any, ...]], int]:
    """The newest alerts that pass every filter given (at most `limit`, newest first) and how many pass in all.

    Rows are (id, kind, webhook, predictor id, event id, payload JSON, state, created_at, sent_at, message id,
    error, attempts): what `sofamon alerts` lists. A predictor matches by id, or by nickname in any case.
    """
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (("created_at >= ?", since), ("created_at <= ?", until)):
        if value is not None:
            where.append(clause)
            params.append(value)
    for column, values in (("state", states), ("kind", kinds)):
        if values:
            where.append(f"{column} IN ({', '.join('?' * len(values))})")
            params += list(values)
    if predictors:
        marks = ", ".join("?" * len(predictors))
        where.append(f"(predictor_id IN ({marks})"
                     f" OR predictor_id IN (SELECT id FROM predictors WHERE LOWER(nickname) IN ({marks})))")
        params += list(predictors) + [p.lower() for p in predictors]
    condition = " AND ".join(where) or "TRUE"
    with db.read() as tx:
        rows = tx.all("SELECT id, kind, webhook, predictor_id, event_id, payload, state, created_at, sent_at,"
                      f" message_id, error, attempts FROM alerts WHERE {condition} ORDER BY id DESC LIMIT ?",
                      (*params, limit))
        total = tx.one(f"SELECT COUNT(*) FROM alerts WHERE {condition}", params)
    return rows, int(total[0]) if total else 0


def _deliverable(now: float, webhook: str | None) -> tuple[str, tuple[Any, ...]]:
    """The condition of an alert still to deliver: pending, or claimed by a notifier whose lease ran out (it died).

    Written as `state IN (...)` so that it reads an index range (alerts_pending with a webhook, alerts_sent
    without), the alerts not delivered yet, instead of every alert the webhook ever had.
    """
    where = "state IN (?, ?) AND (state = ? OR lease_until < ?)"
    params: tuple[Any, ...] = (PENDING, SENDING, PENDING, now)
    if webhook is not None:
        where, params = f"webhook = ? AND {where}", (webhook, *params)
    return where, params


def deliverable_ids(db: Database, now: float, webhook: str | None = None) -> list[int]:
    """Alerts still to deliver, oldest first."""
    where, params = _deliverable(now, webhook)
    with db.read() as tx:
        rows = tx.all(f"SELECT id FROM alerts WHERE {where} ORDER BY id", params)
    return [int(r[0]) for r in rows]


def newest_id(db: Database) -> int:
    """The id of the newest alert (0 when there is none)."""
    with db.read() as tx:
        row = tx.one("SELECT MAX(id) FROM alerts")
    return int(row[0]) if row and row[0] is not None else 0


def deliverable(db: Database, now: float, webhook: str) -> list[OutboxRow]:
    """A webhook's alerts still to deliver, oldest first."""
    where, params = _deliverable(now, webhook)
    with db.read() as tx:
        rows = tx.all(f"SELECT id, webhook, payload, state, created_at FROM alerts WHERE {where} ORDER BY id", params)
    return [_row(values) for values in rows]


def has_deliverable(db: Database, webhook: str, now: float) -> bool:
    """Whether the webhook has any alert still to deliver."""
    where, params = _deliverable(now, webhook)
    with db.read() as tx:
        return tx.one(f"SELECT 1 FROM alerts WHERE {where} LIMIT 1", params) is not None


def claim(db: Database, webhook: str, owner: str, now: float, lease_seconds: float, limit: int) -> list[OutboxRow]:
    """Take the oldest deliverable alerts of a webhook; a row is claimed by one notifier only."""
    where, params = _deliverable(now, webhook)
    with db.tx() as tx:
        rows = tx.all(f"SELECT id, webhook, payload, state, created_at FROM alerts WHERE {where} ORDER BY id LIMIT ?",
                      (*params, limit))
        claimed = []
        for values in rows:
            taken = tx.execute(
                "UPDATE alerts SET state = ?, lease_owner = ?, lease_until = ?, attempts = attempts + 1"
                " WHERE id = ? AND (state = ? OR (state = ? AND lease_until < ?))",
                (SENDING, owner, now + lease_seconds, values[0], PENDING, SENDING, now),
            )
            if taken == 1:
                claimed.append(_row(values))
        # Taken over from a claim that ran out: its notifier may have posted them.
        _count(tx, LEASE_EXPIRED, sum(1 for values in rows if values[3] == SENDING), now)
    return claimed


def _update(db: Database, ids: list[int], assignments: str, values: tuple, owner: str | None,
            possible_duplicate: str | None = None) -> int:
    """The same change to each alert of `ids` the caller may change, in one transaction; how many changed.

    With an `owner`: only alerts that notifier still holds (claimed, not taken over since). Without: only
    alerts nobody holds (pending). A possible duplicate is counted for the changed alerts.
    """
    held = " AND state = ? AND lease_owner = ?" if owner is not None else " AND state = ?"
    held_values = (SENDING, owner) if owner is not None else (PENDING,)
    changed = 0
    with db.tx() as tx:
        for alert_id in ids:
            changed += tx.execute(f"UPDATE alerts SET {assignments} WHERE id = ?{held}",
                                  (*values, alert_id, *held_values))
        if possible_duplicate is not None:
            _count(tx, possible_duplicate, changed, time.time())
    return changed


_UNCLAIMED = "lease_owner = NULL, lease_until = NULL"


def mark_sent(db: Database, ids: list[int], message_id: str, now: float, *, owner: str | None = None) -> int:
    """Record Discord's message for the alerts `owner` holds (unclaimed ones without an owner); how many."""
    return _update(db, ids, f"state = ?, message_id = ?, sent_at = ?, error = NULL, {_UNCLAIMED}",
                   (SENT, message_id, now), owner)


def mark_dry_run(db: Database, ids: list[int], now: float) -> int:
    """Printed instead of posted (no claim is taken); `sent_at` records when, so status can count recent ones."""
    return _update(db, ids, f"state = ?, message_id = NULL, sent_at = ?, error = NULL, {_UNCLAIMED}", (DRY_RUN, now),
                   None)


def release(db: Database, ids: list[int], error: str | None = None, *, owner: str,
            possible_duplicate: str | None = None) -> int:
    """Give back alerts `owner` holds (delivery will be tried again); how many.

    `possible_duplicate`: the kind to count when Discord may have posted them all the same (a timeout).
    """
    return _update(db, ids, f"state = ?, error = ?, {_UNCLAIMED}", (PENDING, error), owner, possible_duplicate)


def mark_failed(db: Database, ids: list[int], error: str, *, owner: str | None = None) -> int:
    """Alerts that will never be delivered (Discord refused them), held by `owner` or unclaimed; how many."""
    return _update(db, ids, f"state = ?, error = ?, {_UNCLAIMED}", (FAILED, error), owner)


def count_sent_since(db: Database, since: float) -> int:
    with db.read() as tx:
        row = tx.one("SELECT COUNT(*) FROM alerts WHERE state = ? AND sent_at >= ?", (SENT, since))
    return int(row[0]) if row else 0


def count_dry_run_since(db: Database, since: float) -> dict[str, int]:
    """Alerts printed instead of posted since then, per webhook."""
    with db.read() as tx:
        rows = tx.all("SELECT webhook, COUNT(*) FROM alerts WHERE state = ? AND sent_at >= ? GROUP BY webhook",
                      (DRY_RUN, since))
    return {str(webhook): int(n) for webhook, n in rows}


def count_by_state(db: Database) -> dict[str, int]:
    with db.read() as tx:
        rows = tx.all("SELECT state, COUNT(*) FROM alerts GROUP BY state")
    return {state: int(n) for state, n in rows}


def waiting(db: Database) -> tuple[int, float | None]:
    """How many alerts are not delivered yet (pending or being sent), and since when the oldest waits."""
    with db.read() as tx:
        row = tx.one("SELECT COUNT(*), MIN(created_at) FROM alerts WHERE state IN (?, ?)", (PENDING, SENDING))
    if row is None:
        return 0, None
    return int(row[0]), float(row[1]) if row[1] is not None else None


def lease_owners(db: Database) -> list[str]:
    """Who holds claimed (sending) alerts right now."""
    with db.read() as tx:
        rows = tx.all("SELECT DISTINCT lease_owner FROM alerts WHERE state = ? AND lease_owner IS NOT NULL", (SENDING,))
    return sorted(str(r[0]) for r in rows)


def release_owner(db: Database, owner: str, error: str | None = None) -> int:
    """Give back every alert claimed by `owner` (a notifier known to be dead); returns how many."""
    with db.tx() as tx:
        released = tx.execute(
            "UPDATE alerts SET state = ?, error = ?, lease_owner = NULL, lease_until = NULL"
            " WHERE state = ? AND lease_owner = ?",
            (PENDING, error, SENDING, owner),
        )
        _count(tx, NOTIFIER_DIED, released, time.time())
    return released


# -- possible duplicates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PossibleDuplicates:
    """How often alerts may have been posted twice for one reason: `times` it happened, `alerts` concerned."""

    kind: str
    times: int
    alerts: int
    last_at: float | None


def _count(tx: Tx, kind: str, alerts: int, now: float) -> None:
    if alerts <= 0:
        return
    tx.execute(
        "INSERT INTO possible_duplicates (kind, times, alerts, last_at) VALUES (?, 1, ?, ?)"
        " ON CONFLICT (kind) DO UPDATE SET times = possible_duplicates.times + 1,"
        " alerts = possible_duplicates.alerts + excluded.alerts, last_at = excluded.last_at",
        (kind, alerts, now),
    )


def count_possible_duplicate(db: Database, kind: str, alerts: int) -> None:
    """Count an occurrence noticed outside an outbox update (e.g. `CLAIM_LOST`)."""
    with db.tx() as tx:
        _count(tx, kind, alerts, time.time())


def possible_duplicates(db: Database) -> dict[str, PossibleDuplicates]:
    """Kind -> how often alerts may have been posted twice for that reason, since the database exists
    (kinds that never happened are left out). For `sofamon status`."""
    with db.read() as tx:
        rows = tx.all("SELECT kind, times, alerts, last_at FROM possible_duplicates ORDER BY kind")
    return {str(kind): PossibleDuplicates(str(kind), int(times), int(alerts),
                                          float(last_at) if last_at is not None else None)
            for kind, times, alerts, last_at in rows}

