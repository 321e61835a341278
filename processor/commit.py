"""The Redis side of a batch of entries the processor committed to the database, in one script call.

Changing the sorted sets the batch touches (events to watch, matches whose votes are wanted, deferred tips),
enqueueing its alerts (each handed to its webhook's lingering drain when one is registered, see
`shared.jobs`) and acknowledging the entries is one run of `processor/lua/commit.lua`: atomic as a
MULTI/EXEC transaction was, without the two commands it took around them, and refused whole while Redis
refuses writes. A batch with more jobs than one script call takes (`shared.jobs.JOBS_PER_CALL`) sends the
others first, in one transaction with it.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

import redis
from rq import Queue

from shared import scripts
from shared.jobs import ENQUEUE_SCRIPT, JOBS_LUA, AlertJob, script_calls

COMMIT_SCRIPT = JOBS_LUA + scripts.source("processor", "commit")


class ZSetChange(NamedTuple):
    """A sorted set's members to remove, then members to add (member -> score); members as given (str()'d)."""

    key: str
    removed: Collection[object]
    added: Mapping[object, float]


def commit(conn: redis.Redis, *, stream: str, group: str, acks: Sequence[str], sorted_sets: Sequence[ZSetChange],
           queue: Queue, jobs: Sequence[AlertJob], retry_intervals: Sequence[int]) -> int:
    """Change `sorted_sets`, enqueue `jobs` and acknowledge `acks` on `stream`, all at once; how many alerts got a
    job or were handed to a drain (those whose job existed did not)."""
    calls = script_calls(queue, jobs, retry_intervals)
    keys, args = calls[-1]
    own: list[object] = [group, len(acks), *acks, len(sorted_sets)]
    for change in sorted_sets:
        own += [len(change.removed), *sorted(str(member) for member in change.removed), len(change.added)]
        for member, score in change.added.items():
            own += [score, str(member)]
    last = ([stream, *(change.key for change in sorted_sets), *keys], [*own, *args])
    if len(calls) == 1:
        return int(conn.eval(COMMIT_SCRIPT, len(last[0]), *last[0], *last[1]))
    with conn.pipeline(transaction=True) as pipe:
        for keys, args in calls[:-1]:
            pipe.eval(ENQUEUE_SCRIPT, len(keys), *keys, *args)
        pipe.eval(COMMIT_SCRIPT, len(last[0]), *last[0], *last[1])
        return sum(int(n) for n in pipe.execute())
