"""`sofamon replay`: run stored entries of the fetched stream through the processor's logic again.

Choosing entries (all filters combine):
- `--from ID` / `--to ID`: stream ids, inclusive (`1795348800000-0`, or just the milliseconds);
- `--since` / `--until`: a window on the entry's `fetched_at`: an ISO datetime (`2026-11-22T10:00`,
  read in POLL_TIMEZONE unless it carries an offset) or a time ago (`30m`, `2h`, `1d`);
- `--predictor ID` (repeatable): the predictions of those predictors, plus every leaderboard entry
  (the statistics the alerts show), every odds entry (odds only alert tips already known) and every
  event entry (a refreshed match alerts only deferred tips already stored);
- `--kind` (repeatable): the kinds to take; by default leaderboard, predictions, odds and event. Health
  entries (upstream blocked/recovered) are left out unless asked for: they explain no tip alert.

`--dry-run` runs the entries, in stream order, through `processor.handle.Handler` on a scratch SQLite
database that starts empty, and prints one line per alert they produce. It only reads the stream:
no Redis writes, no real database, no RQ jobs. Without `--dry-run` the chosen entries are re-injected:
copies of their fields (fetched_at included) are appended to the fetched stream for the running
processor, whose dedup keeps already-alerted tips quiet. Each copy carries one more field,
`replayed_from` (the id it copies; the processor ignores it), and replays never take such copies:
the stream does not grow by its own copies, and a dry run counts every fetch once.

Re-injection never rewinds state: predictor statistics and prices are ordered by when they were
observed (the entry's `fetched_at`), not by when they arrive, so an old leaderboard leaves newer
statistics as they are, and old odds become history, never the latest price or a line movement.
"""
from __future__ import annotations

import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, TextIO

import redis
from pydantic import ValidationError

from processor.handle import BadRecord, Handler, Rules, parse
from shared import console, outbox
from shared.alerts import summary_of_json
from shared.keys import Keys
from shared.logs import first_line
from shared.models import FetchRecord
from shared.redisconn import REDIS_ERRORS, connect, decoded, text
from shared.settings import Settings
from shared.storage import Database

KINDS = ("leaderboard", "predictions", "odds", "event", "health")
# The field that marks a re-injected copy (its value: the id of the entry it copies).
REPLAYED_FROM = "replayed_from"
DEFAULT_KINDS = frozenset({"leaderboard", "predictions", "odds", "event"})
BATCH = 200
PROGRESS_AFTER = 200  # entries: shorter replays never show a progress bar

_STREAM_ID = re.compile(r"^(\d+)(?:-(\d+))?$")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# -- arguments -------------------------------------------------------------------------------------


def parse_when(text: str, now: float, tz: tzinfo) -> float:
    """`2h`, `30m`, `1d` ago, or an ISO datetime (naive: in `tz`); a Unix time in seconds also works."""
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is neither a time ago (30m, 2h, 1d) nor an ISO datetime "
                             "(2026-11-22T10:00)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


def stream_id(text: str) -> str:
    """A stream id as given (`ms-seq` or `ms`), checked."""
    if not _STREAM_ID.match(text.strip()):
        raise ValueError(f"{text!r} is not a stream id (like 1795348800000-0)")
    return text.strip()


def _id_key(entry_id: str, *, upper: bool) -> tuple[int, int]:
    """An id as a comparable pair; a bare `ms` is the first (or, as an upper bound, last) id of that ms."""
    match = _STREAM_ID.match(entry_id)
    assert match is not None
    seq = match.group(2)
    return int(match.group(1)), int(seq) if seq is not None else (2**64 - 1 if upper else 0)


# -- selection -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    first: str = "-"
    last: str = "+"
    since: float | None = None
    until: float | None = None
    predictors: frozenset[str] = frozenset()
    kinds: frozenset[str] = DEFAULT_KINDS

    @property
    def whole_stream(self) -> bool:
        """No filter at all: every entry of the stream is chosen."""
        return (self.first, self.last, self.since, self.until, self.predictors, self.kinds) == \
            ("-", "+", None, None, frozenset(), DEFAULT_KINDS)

    def admits(self, fields: dict[str, str]) -> bool:
        """Whether the filters keep an entry; a field a filter needs but cannot read keeps it (to be reported)."""
        kind = fields.get("kind")
        if kind is not None and kind not in self.kinds:
            return False
        if self.since is not None or self.until is not None:
            try:
                at = float(fields["fetched_at"])
            except (KeyError, ValueError):
                at = None
            if at is not None and ((self.since is not None and at < self.since)
                                   or (self.until is not None and at > self.until)):
                return False
        if self.predictors:
            if kind == "predictions":
                return fields.get("subject") in self.predictors
            return kind in ("leaderboard", "odds", "event") or kind is None
        return True


def bounds(conn: redis.Redis, stream: str, selection: Selection) -> tuple[str, str] | None:
    """The id range to read, its end clamped to the stream's last id now.

    Clamping matters: re-injected copies land after that id, so the scan can never reach them.
    """
    newest = conn.xrevrange(stream, count=1)
    if not newest:
        return None
    last = text(newest[0][0], "replace")
    if selection.last != "+" and _id_key(selection.last, upper=True) < _id_key(last, upper=True):
        last = selection.last
    return selection.first, last


def scan(conn: redis.Redis, stream: str, first: str, last: str, batch: int | None = None
         ) -> Iterator[tuple[str, dict[Any, Any]]]:
    """Entries from `first` to `last` inclusive, read `batch` at a time (the stream may be large)."""
    batch = batch or BATCH
    start = first
    while True:
        chunk = conn.xrange(stream, min=start, max=last, count=batch)
        for entry_id, fields in chunk:
            yield text(entry_id, "replace"), fields
        if len(chunk) < batch:
            return
        start = "(" + text(chunk[-1][0], "replace")


# -- progress --------------------------------------------------------------------------------------


class Progress:
    """A progress bar (`shared.console.progress`) for long replays, by position in the id range.

    It appears once more than PROGRESS_AFTER entries were read, and only on a terminal.
    """

    def __init__(self, first_id: str | None, last_id: str, out: TextIO | None = None, label: str = "replay") -> None:
        self.out = out
        self.lo = _id_key(first_id, upper=False)[0] if first_id and first_id != "-" else None
        self.hi = _id_key(last_id, upper=True)[0]
        self.label = label
        self.count = 0
        self._shown = ExitStack()
        self._bar: console.ProgressBar | None = None

    def step(self, entry_id: str) -> None:
        self.count += 1
        ms = _id_key(entry_id, upper=False)[0]
        if self.lo is None:
            self.lo = ms
        if self.count <= PROGRESS_AFTER:
            return
        if self._bar is None:
            self._bar = self._shown.enter_context(console.progress(self.label, max(self.hi - self.lo, 1), self.out))
            self._bar.count = self.count - 1  # the entries read before it appeared count too
        self._bar.update(min(max(ms - self.lo, 0), self.hi - self.lo))

    def close(self) -> None:
        self._shown.close()


# -- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertLine:
    """One alert a replay produced, as read back from the scratch database."""

    alert_id: int
    kind: str
    predictor_id: str | None
    predictor: str
    match: str
    event_id: int | None
    detail: str
    entry_id: str

    @property
    def key(self) -> tuple[str | None, int | None, str]:
        return self.predictor_id, self.event_id, self.kind


@dataclass
class Result:
    stream: str
    dry_run: bool
    selected: Counter = field(default_factory=Counter)  # by kind
    unparseable: list[tuple[str, str]] = field(default_factory=list)  # (entry id, reason)
    errors: list[tuple[str, str]] = field(default_factory=list)  # the handler failed otherwise (a bug)
    alerts: list[AlertLine] = field(default_factory=list)
    reinjected: int = 0
    copies_skipped: int = 0  # entries a replay re-injected earlier (never taken again)
    first_id: str | None = None
    last_id: str | None = None

    @property
    def total(self) -> int:
        return sum(self.selected.values())


def _alert_line(row: tuple, entry_id: str) -> AlertLine:
    alert_id, kind, predictor_id, event_id, payload = row
    about = summary_of_json(payload)
    return AlertLine(int(alert_id), kind, predictor_id, about.predictor, about.match,
                     int(event_id) if event_id is not None else None, about.detail, entry_id)


def _chosen(conn: redis.Redis, stream: str, span: tuple[str, str], selection: Selection, result: Result,
            progress: Progress) -> Iterator[tuple[str, dict[Any, Any], FetchRecord]]:
    """The entries of the span that the selection admits and that parse; the others are counted in `result`."""
    for entry_id, raw in scan(conn, stream, *span):
        progress.step(entry_id)
        fields = decoded(raw, "replace")
        if not selection.admits(fields):
            continue
        if REPLAYED_FROM in fields:
            result.copies_skipped += 1
            continue
        result.first_id = result.first_id or entry_id
        result.last_id = entry_id
        try:
            record = FetchRecord.from_fields(raw)
            parse(record)
        except (BadRecord, ValidationError) as error:
            result.unparseable.append((entry_id, first_line(error)))
            continue
        yield entry_id, raw, record


def _begin(conn: redis.Redis, settings: Settings, selection: Selection, *, dry: bool
           ) -> tuple[Result, tuple[str, str] | None]:
    """An empty result and the id range to read (None: the stream is empty)."""
    stream = Keys.of(settings).fetched
    return Result(stream=stream, dry_run=dry), bounds(conn, stream, selection)


# -- dry run ---------------------------------------------------------------------------------------


def dry_run(conn: redis.Redis, settings: Settings, selection: Selection, progress_out: TextIO | None = None) -> Result:
    """What the chosen entries produce on an empty database; reads the stream and nothing else."""
    result, span = _begin(conn, settings, selection, dry=True)
    if span is None:
        return result
    stream = result.stream
    with tempfile.TemporaryDirectory(prefix="sofamon-replay-") as scratch:
        db = Database(f"sqlite:///{scratch}/replay.db")
        try:
            db.migrate()
            handler = Handler(db, Rules.of(settings))
            origin: dict[int, str] = {}
            progress = Progress(span[0], span[1], progress_out)
            try:
                for entry_id, _raw, record in _chosen(conn, stream, span, selection, result, progress):
                    try:
                        outcome = handler.handle(record)
                    except (BadRecord, ValidationError) as error:
                        result.unparseable.append((entry_id, first_line(error)))
                        continue
                    except Exception as error:  # noqa: BLE001 - a replay reports a handler bug, it does not stop
                        result.errors.append((entry_id, f"{type(error).__name__}: {first_line(error)}"))
                        continue
                    result.selected[record.kind] += 1
                    for alert_id in outcome.alert_ids:
                        origin[alert_id] = entry_id
            finally:
                progress.close()
            result.alerts = [_alert_line(row, origin.get(int(row[0]), "?")) for row in outbox.listing(db)]
        finally:
            db.close()
    return result


# -- re-injection ----------------------------------------------------------------------------------


def reinject(conn: redis.Redis, settings: Settings, selection: Selection, progress_out: TextIO | None = None) -> Result:
    """Append copies of the chosen entries (fields unchanged) to the fetched stream; unparseable ones stay out."""
    result, span = _begin(conn, settings, selection, dry=False)
    if span is None:
        return result
    stream = result.stream
    progress = Progress(span[0], span[1], progress_out, label="re-inject")
    pipe = conn.pipeline(transaction=False)
    queued = 0
    try:
        # Unparseable entries are left out: they would only land in dead letters again.
        for entry_id, raw, record in _chosen(conn, stream, span, selection, result, progress):
            result.selected[record.kind] += 1
            pipe.xadd(stream, {**raw, REPLAYED_FROM: entry_id})
            queued += 1
            if queued >= BATCH:
                result.reinjected += len(pipe.execute())
                queued = 0
        if queued:
            result.reinjected += len(pipe.execute())
    finally:
        progress.close()
        pipe.reset()
    return result


# -- text ------------------------------------------------------------------------------------------


def render(result: Result, max_listed: int = 20) -> str:
    lines: list[str] = []
    kinds = ", ".join(f"{n:,} {k}" for k, n in sorted(result.selected.items())) or "none"
    span = f" ({result.first_id} .. {result.last_id})" if result.first_id else ""
    if result.dry_run:
        if result.alerts:
            rows = [[a.kind, a.predictor, a.match, str(a.event_id or "-"), a.detail, a.entry_id] for a in result.alerts]
            lines += console.table(rows, headers=["KIND", "PREDICTOR", "MATCH", "EVENT", "DETAIL", "ENTRY"])
            lines.append("")
        lines.append(f"dry run: {result.total:,} entries replayed{span}: {kinds}")
        lines.append(f"{len(result.alerts):,} alert(s) would be produced on an empty database;"
                     " nothing was sent, written or enqueued")
    else:
        lines.append(f"re-injected {result.reinjected:,} entries onto {result.stream}{span}: {kinds}")
        if result.reinjected:
            lines.append("the processor handles them next; tips already alerted are not alerted again")
        if result.selected.get("odds"):
            lines.append("odds older than those already processed become history only: no line movement alert")
    if result.copies_skipped:
        lines.append(f"{result.copies_skipped:,} copies re-injected by earlier replays left out")
    if result.unparseable:
        lines.append(f"{len(result.unparseable):,} unparseable entr{'y' if len(result.unparseable) == 1 else 'ies'}"
                     f" skipped{' (not re-injected)' if not result.dry_run else ''}:")
        lines += [f"  {entry_id}  {reason}" for entry_id, reason in result.unparseable[:max_listed]]
        if len(result.unparseable) > max_listed:
            lines.append(f"  ... and {len(result.unparseable) - max_listed:,} more")
    if result.errors:
        lines.append(f"{len(result.errors):,} entr{'y' if len(result.errors) == 1 else 'ies'} made the processor"
                     " fail (a bug: the running processor would stop on them):")
        lines += [f"  {entry_id}  {reason}" for entry_id, reason in result.errors[:max_listed]]
    return "\n".join(lines)


def run(settings: Settings, selection: Selection, dry: bool, out: TextIO | None = None,
        confirm: Callable[[str], bool] | None = None) -> int:
    """Replay; `confirm`, when given, is asked (with the stream's length) before anything is re-injected."""
    out = out if out is not None else sys.stdout
    conn = connect(settings, socket_timeout=60)
    try:
        if confirm is not None and not dry:
            stream = Keys.of(settings).fetched
            question = (f"re-inject every entry of {stream} for the processor ({conn.xlen(stream):,} entries in"
                        " the stream; copies of earlier replays are left out)?")
            if not confirm(question):
                console.show("sofamon replay: nothing re-injected", sys.stderr)
                return 1
        result = (dry_run if dry else reinject)(conn, settings, selection)
    except REDIS_ERRORS as error:
        console.show(f"sofamon replay: Redis unreachable: {type(error).__name__}: {first_line(error)}", sys.stderr)
        return 1
    finally:
        conn.close()
    console.show(render(result), out)
    return 0
