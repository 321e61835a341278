"""Reading the fetched stream as a consumer group: own pending entries first, then orphans, then new.

Own pending entries are looked for when there can be some (after a batch that left entries unacknowledged);
orphans at start and then every `check_every` seconds (a quarter of NOTIFIER_LEASE_SECONDS). So a read is one
command when nothing went wrong, not three.

Orphans are the pending entries of another consumer that is gone (`gone`: its heartbeat says so, wherever it
ran; a restarted processor has a new name and takes its predecessor's entries this way, at its first read),
and any entry left idle past `claim_idle_ms` (the lease) by a consumer that still beats but does not get on
with it. A gone consumer with nothing pending is removed from the group (atomically: only while it has
nothing pending), and so is this one on a clean stop (`leave`), so the group does not grow with every restart.


A Redis that restarted without its data (no persistence, as many installs run it) no longer has the
stream or its group: reading then recreates both and goes on with what the fetcher writes from then on.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import redis

from processor import deadletters
from shared.redisconn import text

log = logging.getLogger("processor")

Entry = tuple[str, dict[bytes, bytes]]

# An entry of a gone consumer is taken when idle this long at least: two processors that find the same gone
# consumer at once do not take its entries from each other.
GONE_MIN_IDLE_MS = 500
# Remove a consumer from the group only while it has nothing pending (an entry read meanwhile stays claimable).
_LEAVE = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"""


def group_missing(error: redis.ResponseError) -> bool:
    """Redis no longer has the stream or its group (it lost its data, or they were deleted): NOGROUP, or
    UNBLOCKED for a read that was waiting when the stream went."""
    return str(error).startswith(("NOGROUP", "UNBLOCKED"))


class Delivery(NamedTuple):
    """An entry as read now, with how many times Redis has delivered it (this time included)."""

    id: str
    fields: dict[bytes, bytes]
    count: int


class StreamConsumer:
    def __init__(self, conn: redis.Redis, stream: str, group: str, consumer: str, claim_idle_ms: int = 60_000, *,
                 check_every: float | None = None, gone: Callable[[str], bool] | None = None) -> None:
        self.conn = conn
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self.check_every = claim_idle_ms / 2000 if check_every is None else check_every
        self.gone = gone  # whether another consumer is gone (None: only idle entries are taken)
        self._leave = conn.register_script(_LEAVE)
        self._own_pending = True  # entries of this consumer may be pending (a name used before)
        self._outstanding: set[str] = set()  # read, neither acknowledged nor dead-lettered yet
        self._orphans_at = 0.0  # when to look for orphans next (monotonic)

    def ensure_group(self) -> None:
        """Create the group at the start of the stream, so nothing fetched before the first run is skipped."""
        try:
            self.conn.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def read(self, count: int, block_ms: int | None) -> list[Delivery]:
        """The next entries to handle; an entry stays pending until `ack`, so a crash loses nothing."""
        try:
            return self._read(count, block_ms)
        except redis.ResponseError as error:
            if not group_missing(error):
                raise
            log.warning("the stream %s has no consumer group %s any more (%s); recreating it, reading the stream"
                        " from its start", self.stream, self.group, str(error).split(" ", 1)[0])
        self.ensure_group()
        return self._read(count, block_ms)

    def _read(self, count: int, block_ms: int | None) -> list[Delivery]:
        if self._outstanding:  # the last batch left entries pending (a failure, or it was cut short)
            self._own_pending = True
        again: list[Entry] = []
        if self._own_pending:
            again = self.own_pending(count)
            self._own_pending = len(again) == count  # a full batch: more may wait
        if not again and time.monotonic() >= self._orphans_at:
            again = self.claim_orphans(count)
            self._orphans_at = time.monotonic() + (0 if len(again) == count else self.check_every)
        deliveries = self._counted(again) if again else [Delivery(i, f, 1) for i, f in self.new(count, block_ms)]
        self._outstanding = {d.id for d in deliveries}
        return deliveries

    def _counted(self, entries: list[Entry]) -> list[Delivery]:
        """Entries delivered before, with Redis's delivery counter (XPENDING's times-delivered)."""
        ids = sorted((i for i, _ in entries), key=_id_order)
        rows = self.conn.xpending_range(self.stream, self.group, min=ids[0], max=ids[-1], count=len(ids),
                                        consumername=self.consumer)
        counts = {text(r["message_id"]): int(r["times_delivered"]) for r in rows}
        return [Delivery(i, f, counts.get(i, 1)) for i, f in entries]

    def own_pending(self, count: int) -> list[Entry]:
        """Entries this consumer read before (a restart, or a failure that left them unacknowledged)."""
        return self._entries(self.conn.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=count))

    def claim_orphans(self, count: int) -> list[Entry]:
        """Entries left pending by consumers that are gone, then any that sat idle past `claim_idle_ms`."""
        entries = self._from_gone(count) if self.gone is not None else []
        if len(entries) < count:
            reply = self.conn.xautoclaim(self.stream, self.group, self.consumer, self.claim_idle_ms, "0-0",
                                         count=count - len(entries))
            entries += [(text(i), f) for i, f in reply[1] if f]
        return entries

    def _from_gone(self, count: int) -> list[Entry]:
        """The pending entries of consumers that are gone; those with nothing pending leave the group."""
        assert self.gone is not None
        entries: list[Entry] = []
        try:
            consumers = self.conn.xinfo_consumers(self.stream, self.group)
        except redis.ResponseError as error:
            if not str(error).startswith("no such key"):
                raise
            return []  # the stream is gone (Redis lost its data): XAUTOCLAIM's NOGROUP has `read` recreate it
        for info in consumers:
            name = text(info["name"])
            if name == self.consumer or not self.gone(name):
                continue
            if int(info["pending"]) == 0:
                if self._leave(keys=[self.stream], args=[self.group, name]) != -1:
                    log.info("removed consumer %s (gone, nothing pending) from group %s", name, self.group)
                continue
            if len(entries) >= count:
                continue
            rows = self.conn.xpending_range(self.stream, self.group, min="-", max="+", count=count - len(entries),
                                            consumername=name)
            claimed = self.conn.xclaim(self.stream, self.group, self.consumer, GONE_MIN_IDLE_MS,
                                       [row["message_id"] for row in rows]) if rows else []
            taken = [(text(i), f) for i, f in claimed if f]
            if taken:
                log.warning("took %d pending entries of consumer %s (gone)", len(taken), name)
            entries += taken
        return entries

    def leave(self) -> bool:
        """Leave the group on a clean stop, when nothing of this consumer is pending; whether it left."""
        return self._leave(keys=[self.stream], args=[self.group, self.consumer]) != -1

    def new(self, count: int, block_ms: int | None) -> list[Entry]:
        reply = self.conn.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms)
        return self._entries(reply)

    def ack(self, entry_ids: list[str], client: redis.Redis | None = None) -> None:
        """Done with these entries; on `client` (a pipeline: with the rest of its transaction) when given."""
        if entry_ids:
            (client if client is not None else self.conn).xack(self.stream, self.group, *entry_ids)
            # Through a pipeline that then fails, the caller acknowledges them again before it reads more.
            self._outstanding.difference_update(entry_ids)

    def acknowledged(self, entry_ids: list[str]) -> None:
        """These entries were acknowledged by the caller (in the script that ends their batch)."""
        self._outstanding.difference_update(entry_ids)

    def dead_letter(self, dead_stream: str, entry_id: str, fields: dict[Any, Any], reason: str) -> None:
        """Park an entry that can never be processed, with the reason, and move on (atomically)."""
        with self.conn.pipeline(transaction=True) as pipe:
            deadletters.park(pipe, dead_stream, self.stream, entry_id, fields, reason)
            pipe.xack(self.stream, self.group, entry_id)
            pipe.execute()
        self._outstanding.discard(entry_id)

    def _entries(self, reply: Any) -> list[Entry]:
        entries: list[Entry] = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                if fields:  # an entry trimmed away while pending comes back empty
                    entries.append((text(entry_id), fields))
                else:
                    self.ack([text(entry_id)])
        return entries

    def lag(self) -> dict[str, int | None]:
        try:
            groups = self.conn.xinfo_groups(self.stream)
        except redis.ResponseError as error:
            if "no such key" not in str(error):
                raise
            groups = []  # the stream is gone (Redis lost its data): the next read recreates it
        for group in groups:
            if text(group["name"]) == self.group:
                return {"pending": int(group["pending"]), "lag": group.get("lag")}
        return {"pending": 0, "lag": None}


def _id_order(entry_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in entry_id.split("-"))
