"""`sofamon dead-letters`: list the entries the processor could not use, and retry them.

A dead letter (stream `Keys.dead_letters`) has the fields source_id, source_stream, reason and
fields (the JSON of the original entry's fields). Retrying one appends the original fields to the
fetched stream and deletes the dead letter in one MULTI/EXEC transaction, under WATCH of the
dead-letter stream so two operators retrying at once cannot both re-inject it. An entry that fails
again simply becomes a new dead letter.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TextIO

import redis

from shared.keys import Keys
from shared.logs import first_line
from shared.redisconn import decoded, text
from shared.settings import Settings

WATCH_ATTEMPTS = 5


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
    original = _original(fields.get("fields"))
    try:
        fetched_at = float(original["fetched_at"]) if original and "fetched_at" in original else None
    except ValueError:
        fetched_at = None
    return DeadLetter(
        id=entry_id,
        dead_at=int(entry_id.split("-", 1)[0]) / 1000,
        source_id=fields.get("source_id", ""),
        source_stream=fields.get("source_stream", ""),
        reason=fields.get("reason", ""),
        kind=original.get("kind") if original else None,
        subject=original.get("subject") if original else None,
        fetched_at=fetched_at,
        payload_bytes=len(original["payload"]) if original and "payload" in original else None,
        fields_ok=original is not None,
    )


def list_letters(conn: redis.Redis, keys: Keys) -> list[DeadLetter]:
    return [_letter(i, f) for i, f in conn.xrange(keys.dead_letters)]


@dataclass(frozen=True)
class Retried:
    id: str
    ok: bool
    new_id: str | None = None
    error: str | None = None


def retry(conn: redis.Redis, keys: Keys, entry_id: str) -> Retried:
    """Put one dead letter's original fields back on the fetched stream and delete it, atomically."""
    for _ in range(WATCH_ATTEMPTS):
        with conn.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(keys.dead_letters)
                found = pipe.xrange(keys.dead_letters, min=entry_id, max=entry_id)
                if not found:
                    return Retried(entry_id, False, error="no such dead letter")
                raw = decoded(found[0][1], "replace")
                original = _original(raw.get("fields"))
                if not original:
                    return Retried(entry_id, False, error="its original fields are not readable JSON; left in place")
                pipe.multi()
                pipe.xadd(keys.fetched, original)
                pipe.xdel(keys.dead_letters, entry_id)
                new_id, _deleted = pipe.execute()
            except redis.WatchError:
                continue  # the dead-letter stream changed meanwhile: look again
            except redis.ResponseError as error:  # e.g. not a valid stream id
                return Retried(entry_id, False, error=first_line(error, 200))
        return Retried(entry_id, True, new_id=text(new_id, "replace"))
    return Retried(entry_id, False, error="the dead-letter stream kept changing; try again")


def retry_many(conn: redis.Redis, keys: Keys, ids: list[str]) -> list[Retried]:
    return [retry(conn, keys, i) for i in ids]


# -- text ------------------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def render(letters: list[DeadLetter], stream: str) -> str:
    if not letters:
        return f"no dead letters in {stream}"
    rows = [["ID", "DEAD-LETTERED", "KIND", "SUBJECT", "FETCHED", "REASON"]]
    for d in letters:
        rows.append([d.id, _when(d.dead_at), d.kind or "?", d.subject or "?", _when(d.fetched_at),
                     d.reason if d.fields_ok else f"{d.reason} [original fields unreadable]"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append(f"{len(letters)} dead letter(s) in {stream}; retry with --retry ID or --retry-all")
    return "\n".join(lines)


def run(settings: Settings, retry_ids: list[str] | None, retry_all: bool, as_json: bool,
        out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    keys = Keys.of(settings)
    conn = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=30)
    try:
        if not retry_ids and not retry_all:
            letters = list_letters(conn, keys)
            if as_json:
                print(json.dumps({"stream": keys.dead_letters, "count": len(letters),
                                  "dead_letters": [asdict(d) for d in letters]}, indent=2), file=out)
            else:
                print(render(letters, keys.dead_letters), file=out)
            return 0
        # --retry-all works on the ids present now: entries that fail again come back as new ids.
        ids = [d.id for d in list_letters(conn, keys)] if retry_all else list(retry_ids or [])
        results = retry_many(conn, keys, ids)
    except (redis.ConnectionError, redis.TimeoutError) as error:
        print(f"sofamon dead-letters: Redis unreachable: {type(error).__name__}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if as_json:
        print(json.dumps({"retried": [asdict(r) for r in results]}, indent=2), file=out)
    else:
        for r in results:
            print(f"{r.id}: re-injected as {r.new_id}" if r.ok else f"{r.id}: not retried: {r.error}", file=out)
        done = sum(r.ok for r in results)
        print(f"{done} of {len(results)} dead letter(s) re-injected onto {keys.fetched}", file=out)
    return 0 if all(r.ok for r in results) else 1
