"""`sofamon alerts`: the recent alerts of the outbox, with what they say, their state and times.

Reads the database only (shared/outbox.py). Filters combine: `--since`/`--until` on when an alert was
created (the forms of `replay --since`), `--state`, `--kind`, `--predictor` (id or nickname); the newest
`--limit` are shown, newest first. Times carry their zone (text: local time; JSON: ISO 8601 UTC).
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TextIO

from shared import outbox
from shared.alerts import summary_of_json
from shared.settings import Settings
from shared.timefmt import iso_utc, local_stamp

# `sofamon`'s parser imports this module for its choices, whatever the command (the fetcher's too): the
# database driver and rich, ~11 MB between them, are imported where they are used.
if TYPE_CHECKING:
    from shared.storage import Database

STATES = (outbox.PENDING, outbox.SENDING, outbox.SENT, outbox.FAILED, outbox.DEAD)
KINDS = ("new_tip", "line_movement", "consensus", "digest", "health")
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class Filters:
    since: float | None = None
    until: float | None = None
    states: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    predictors: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class Listed:
    id: int
    kind: str
    webhook: str
    predictor_id: str | None
    predictor: str
    match: str
    event_id: int | None
    detail: str
    state: str
    created_at: float
    sent_at: float | None
    message_id: str | None
    error: str | None
    attempts: int


def _listed(row: tuple[Any, ...]) -> Listed:
    (alert_id, kind, webhook, predictor_id, event_id, payload, state, created_at, sent_at, message_id, error,
     attempts) = row
    about = summary_of_json(payload)
    return Listed(int(alert_id), kind, webhook, predictor_id, about.predictor, about.match,
                  int(event_id) if event_id is not None else None, about.detail, state, float(created_at),
                  float(sent_at) if sent_at is not None else None, message_id, error, int(attempts or 0))


def query(db: Database, filters: Filters) -> tuple[list[Listed], int]:
    """The alerts to show, newest first, and how many pass the filters in all."""
    rows, total = outbox.recent(db, limit=filters.limit, since=filters.since, until=filters.until,
                                states=filters.states, kinds=filters.kinds, predictors=filters.predictors)
    return [_listed(r) for r in rows], total


def _state(alert: Listed) -> str:
    """The state, with the tries when delivery had to try more than once."""
    return f"{alert.state} ({alert.attempts} tries)" if alert.attempts > 1 else alert.state


def render(alerts: list[Listed], total: int, filtered: bool = False) -> str:
    from shared import console

    if not alerts:
        return "no alerts match these filters" if filtered else "no alerts yet"
    rows = [[str(a.id), local_stamp(a.created_at), a.kind, a.predictor, a.match, _state(a), local_stamp(a.sent_at),
             a.error if a.error and a.state != outbox.SENT else a.detail] for a in alerts]
    lines = console.table(rows, headers=["ID", "CREATED", "KIND", "PREDICTOR", "MATCH", "STATE", "SENT",
                                         "DETAIL / ERROR"])
    if total > len(alerts):
        lines.append(f"{len(alerts)} most recent of {total} alert(s); --limit N shows more")
    else:
        lines.append(f"{total} alert(s)")
    return "\n".join(lines)


def as_json(alerts: list[Listed], total: int) -> str:
    def item(alert: Listed) -> dict[str, Any]:
        data = asdict(alert)
        data["created_at"] = iso_utc(alert.created_at)
        data["sent_at"] = iso_utc(alert.sent_at) if alert.sent_at is not None else None
        return data

    return json.dumps({"total": total, "alerts": [item(a) for a in alerts]}, indent=2)


def run(settings: Settings, filters: Filters, json_output: bool = False, out: TextIO | None = None) -> int:
    from shared import console
    from sofamon.readdb import read_database

    out = out if out is not None else sys.stdout
    found = read_database(settings, "alerts", lambda db: query(db, filters))
    if found is None:
        return 1
    alerts, total = found
    filtered = filters != Filters(limit=filters.limit)
    console.show(as_json(alerts, total) if json_output else render(alerts, total, filtered), out)
    return 0
