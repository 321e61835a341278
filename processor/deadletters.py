"""Dead letters: the entries the processor could not use, with the reason; and `sofamon dead-letters`.

This module owns the format of the dead-letter stream (`Keys.dead_letters`): `park` writes a dead
letter, `list_letters` reads them, `find` reads one with its stored payload, `retry` re-injects one. A dead letter has the fields source_id,
source_stream, reason and fields (the JSON of the original entry's fields). Retrying one appends the
original fields to the fetched stream and deletes the dead letter in one MULTI/EXEC transaction,
under WATCH of the dead-letter stream so two operators retrying at once cannot both re-inject it.
An entry that fails again simply becomes a new dead letter.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import redis
import tenacity

from shared import console
from shared.keys import Keys
from shared.logs import first_line
from shared.numbers import opt_float
from shared.redisconn import REDIS_ERRORS, connect, decoded, text
from shared.settings import Settings
from shared.timefmt import local_stamp

SOURCE_ID, SOURCE_STREAM, REASON, FIELDS = "source_id", "source_stream", "reason", "fields"
WATCH_ATTEMPTS = 5


def park(pipe: Any, dead_stream: str, source_stream: str, entry_id: str, fields: dict[Any, Any],
         reason: str) -> None:
    """Queue on `pipe` the dead letter of one entry; the caller acknowledges the entry in the same transaction."""
    pipe.xadd(dead_stream, {SOURCE_ID: entry_id, SOURCE_STREAM: source_stream, REASON: reason,
                            FIELDS: json.dumps(decoded(fields))})


@dataclass(frozen=True)
class DeadLetter:
    id: str
    dead_at: float  # when it was dead-lettered (the time in its stream id)
    source_id: str
    source_stream: str
    reason: str
    kind: str | None
    subject: str | None
    fetched_at: float | None
    payload_bytes: int | None
    fields_ok: bool  # the original fields could be decoded (a retry is possible)


def _original(raw: str | None) -> dict[str, str] | None:
    try:
        fields = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    return {str(k): str(v) for k, v in fields.items()}


def _letter(entry_id: Any, raw_fields: dict[Any, Any]) -> DeadLetter:
    entry_id = text(entry_id, "replace")
    fields = decoded(raw_fields, "replace")
    original = _original(fields.get(FIELDS))
    return DeadLetter(
        id=entry_id,
        dead_at=int(entry_id.split("-", 1)[0]) / 1000,
        source_id=fields.get(SOURCE_ID, ""),
        source_stream=fields.get(SOURCE_STREAM, ""),
        reason=fields.get(REASON, ""),
        kind=original.get("kind") if original else None,
        subject=original.get("subject") if original else None,
        fetched_at=opt_float(original.get("fetched_at")) if original else None,
        payload_bytes=len(original["payload"]) if original and "payload" in original else None,
        fields_ok=original is not None,
    )


def list_letters(conn: redis.Redis, keys: Keys) -> list[DeadLetter]:
    return [_letter(i, f) for i, f in conn.xrange(keys.dead_letters)]


@dataclass(frozen=True)
class Stored:
    """One dead letter with what it keeps of the original entry (`fields` None: not readable as JSON)."""

    letter: DeadLetter
    fields: dict[str, str] | None
    raw_fields: str


def find(conn: redis.Redis, keys: Keys, entry_id: str) -> Stored | None:
    """The dead letter `entry_id`; None when there is none (or the id is not a stream id)."""
    try:
        found = conn.xrange(keys.dead_letters, min=entry_id, max=entry_id)
    except redis.ResponseError:  # not a valid stream id
        return None
    if not found:
        return None
    raw = decoded(found[0][1], "replace").get(FIELDS, "")
    return Stored(_letter(*found[0]), _original(raw), raw)


@dataclass(frozen=True)
class Retried:
    id: str
    ok: bool
    new_id: str | None = None
    error: str | None = None


def retry(conn: redis.Redis, keys: Keys, entry_id: str) -> Retried:
    """Put one dead letter's original fields back on the fetched stream and delete it, atomically."""
    try:
        return _move_back(conn, keys, entry_id)
    except redis.WatchError:
        return Retried(entry_id, False, error="the dead-letter stream kept changing; try again")


# The dead-letter stream changed between WATCH and EXEC: look again, a few times.
@tenacity.retry(retry=tenacity.retry_if_exception_type(redis.WatchError),
                stop=tenacity.stop_after_attempt(WATCH_ATTEMPTS), reraise=True)
def _move_back(conn: redis.Redis, keys: Keys, entry_id: str) -> Retried:
    with conn.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(keys.dead_letters)
            found = pipe.xrange(keys.dead_letters, min=entry_id, max=entry_id)
            if not found:
                return Retried(entry_id, False, error="no such dead letter")
            original = _original(decoded(found[0][1], "replace").get(FIELDS))
            if not original:
                return Retried(entry_id, False, error="its original fields are not readable JSON; left in place")
            pipe.multi()
            pipe.xadd(keys.fetched, original)
            pipe.xdel(keys.dead_letters, entry_id)
            new_id, _deleted = pipe.execute()
        except redis.ResponseError as error:  # e.g. not a valid stream id
            return Retried(entry_id, False, error=first_line(error, 200))
    return Retried(entry_id, True, new_id=text(new_id, "replace"))


def retry_many(conn: redis.Redis, keys: Keys, ids: list[str]) -> list[Retried]:
    return [retry(conn, keys, i) for i in ids]


# -- text ------------------------------------------------------------------------------------------


def render(letters: list[DeadLetter], stream: str) -> str:
    if not letters:
        return f"no dead letters in {stream}"
    rows = [[d.id, local_stamp(d.dead_at), d.kind or "?", d.subject or "?", local_stamp(d.fetched_at),
             d.reason if d.fields_ok else f"{d.reason} [original fields unreadable]"] for d in letters]
    lines = console.table(rows, headers=["ID", "DEAD-LETTERED", "KIND", "SUBJECT", "FETCHED", "REASON"])
    lines.append(f"{len(letters)} dead letter(s) in {stream}; --show ID for its payload; retry with --retry ID"
                 " or --retry-all")
    return "\n".join(lines)


def _payload_text(payload: str) -> str:
    """The payload as indented JSON when it is JSON, else as stored."""
    try:
        return json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    except ValueError:
        return payload


def render_stored(stored: Stored) -> str:
    d = stored.letter
    lines = [f"dead letter {d.id}, dead-lettered {local_stamp(d.dead_at)}",
             f"reason:  {d.reason}",
             f"source:  {d.source_stream} {d.source_id}"]
    if stored.fields is None:
        lines += ["original fields (not readable as JSON; a retry is impossible):", stored.raw_fields]
        return "\n".join(lines)
    lines.append(f"kind:    {d.kind or '?'}   subject: {d.subject or '?'}   fetched: {local_stamp(d.fetched_at)}")
    others = {k: v for k, v in stored.fields.items() if k not in ("kind", "subject", "fetched_at", "payload")}
    lines += [f"{k}: {v}" for k, v in others.items()]
    if "payload" in stored.fields:
        lines += [f"payload ({d.payload_bytes:,} bytes):", _payload_text(stored.fields["payload"])]
    else:
        lines.append("payload: none")
    return "\n".join(lines)


def render_retried(results: list[Retried], stream: str) -> str:
    lines = [f"{r.id}: re-injected as {r.new_id}" if r.ok else f"{r.id}: not retried: {r.error}" for r in results]
    lines.append(f"{sum(r.ok for r in results)} of {len(results)} dead letter(s) re-injected onto {stream}")
    return "\n".join(lines)


def show(settings: Settings, entry_id: str, as_json: bool, out: TextIO | None = None) -> int:
    """`dead-letters --show ID`: one dead letter with its stored payload."""
    out = out if out is not None else sys.stdout
    conn = connect(settings, socket_timeout=30)
    try:
        stored = find(conn, Keys.of(settings), entry_id)
    finally:
        conn.close()
    if stored is None:
        console.show(f"sofamon dead-letters: no dead letter {entry_id}", sys.stderr)
        return 1
    if as_json:
        console.show(json.dumps({**asdict(stored.letter), "fields": stored.fields,
                                 "raw_fields": stored.raw_fields if stored.fields is None else None}, indent=2), out)
    else:
        console.show(render_stored(stored), out)
    return 0


def run(settings: Settings, retry_ids: list[str] | None, retry_all: bool, as_json: bool,
        out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    keys = Keys.of(settings)
    conn = connect(settings, socket_timeout=30)
    try:
        if not retry_ids and not retry_all:
            letters = list_letters(conn, keys)
            if as_json:
                console.show(json.dumps({"stream": keys.dead_letters, "count": len(letters),
                                 "dead_letters": [asdict(d) for d in letters]}, indent=2), out)
            else:
                console.show(render(letters, keys.dead_letters), out)
            return 0
        # --retry-all works on the ids present now: entries that fail again come back as new ids.
        ids = [d.id for d in list_letters(conn, keys)] if retry_all else list(retry_ids or [])
        results = retry_many(conn, keys, ids)
    except REDIS_ERRORS as error:
        console.show(f"sofamon dead-letters: Redis unreachable: {type(error).__name__}", sys.stderr)
        return 1
    finally:
        conn.close()
    if as_json:
        console.show(json.dumps({"retried": [asdict(r) for r in results]}, indent=2), out)
    else:
        console.show(render_retried(results, keys.fetched), out)
    return 0 if all(r.ok for r in results) else 1
