"""The fetcher's saved state in Redis, and its only reader and writer.

Two hashes (names in shared/keys.py): `fetcher_state` holds the fetcher's own fields (cycle times,
the leaderboard selection, the upstream backoff), `monitored` holds one JSON object per predictor id
(nickname, last fetch, strikes, pause). The fetcher loads and saves them through `StateStore`;
`sofamon status` reads the same hashes and turns them into a `FetcherState` with `from_hashes`, so the
field names and layouts are written here and nowhere else.

Whatever is stored may be garbled (an edit by hand, another version, a bad disk): reading never fails.
Unreadable own fields are left unset, a predictor whose JSON is unreadable or holds a value of the wrong
type starts afresh (and is named), and a key that is not a hash at all is read as empty and replaced
by the next save.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import redis

from fetcher.backoff import PredictorState, UpstreamBackoff
from shared.keys import Keys
from shared.numbers import opt_float
from shared.redisconn import decoded

log = logging.getLogger(__name__)

_TIMES = ("last_cycle_at", "last_success_at", "next_poll_at", "leaderboard_at")


@dataclass
class FetcherState:
    last_cycle_at: float | None = None
    last_success_at: float | None = None  # the last good answer from Sofascore
    next_poll_at: float | None = None
    leaderboard_at: float | None = None
    # Predictor ids the last leaderboard selected, in leaderboard order; None until one was read.
    selected: list[str] | None = None
    upstream: UpstreamBackoff = field(default_factory=UpstreamBackoff)
    predictors: dict[str, PredictorState] = field(default_factory=dict)
    # Predictor ids whose stored state could not be read (they start afresh).
    unreadable: list[str] = field(default_factory=list)

    def to_hashes(self) -> tuple[dict[str, str], dict[str, str]]:
        """The `fetcher_state` and `monitored` hashes ("" = unset)."""
        own = {name: _number(getattr(self, name)) for name in _TIMES}
        own["monitored"] = json.dumps(self.selected)
        own.update(self.upstream_fields())
        return own, {pid: predictor_json(s) for pid, s in self.predictors.items()}

    def adopt(self, stored: "FetcherState") -> None:
        """Take up what fetchers sharing the work stored (`fetcher.share`): a newer leaderboard selection, a
        later upstream block, and each predictor's state where it was polled more recently than here."""
        if stored.leaderboard_at is not None and (self.leaderboard_at or 0.0) < stored.leaderboard_at:
            self.leaderboard_at, self.selected = stored.leaderboard_at, stored.selected
        if stored.upstream.until is not None and (self.upstream.until or 0.0) < stored.upstream.until:
            self.upstream = stored.upstream
        for pid, theirs in stored.predictors.items():
            ours = self.predictors.get(pid)
            if ours is None or (ours.last_fetch or 0.0) < (theirs.last_fetch or 0.0):
                self.predictors[pid] = theirs

    def upstream_fields(self) -> dict[str, str]:
        return {"backoff_until": _number(self.upstream.until), "backoff_seconds": repr(self.upstream.seconds),
                "blocked_since": _number(self.upstream.blocked_since)}

    @classmethod
    def from_hashes(cls, own: Mapping[Any, Any], monitored: Mapping[Any, Any]) -> "FetcherState":
        """Whatever can be read of the two hashes; unreadable parts are left unset (never raises)."""
        own = decoded(own, "replace")
        state = cls(**{name: opt_float(own.get(name)) for name in _TIMES})
        state.selected = _ids(own.get("monitored"))
        state.upstream = UpstreamBackoff(
            until=opt_float(own.get("backoff_until")),
            seconds=opt_float(own.get("backoff_seconds")) or 0.0,
            blocked_since=opt_float(own.get("blocked_since")),
        )
        for pid, raw in decoded(monitored, "replace").items():
            try:
                state.predictors[pid] = predictor_from_json(raw)
            except (ValueError, TypeError, RecursionError):  # RecursionError: JSON nested too deep
                state.unreadable.append(pid)
        return state


def predictor_json(state: PredictorState) -> str:
    return json.dumps(asdict(state))


def predictor_from_json(raw: str | bytes) -> PredictorState:
    """A stored predictor state; fields this version does not know are ignored. Raises ValueError if
    unreadable: not a JSON object, or a known field holding a value of the wrong type."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    known = {f.name: data[f.name] for f in fields(PredictorState) if f.name in data}
    for name, value in known.items():
        check = _FIELD_CHECKS.get(name)
        if check is not None and not check(value):
            raise ValueError(f"{name}: {type(value).__name__} {str(value)[:40]!r}")
    return PredictorState(**known)


def _is_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_time(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# What each stored field of a PredictorState may hold (a field without a check is taken as it is).
_FIELD_CHECKS = {"nickname": _is_text, "last_status": _is_text, "last_fetch": _is_time, "paused_until": _is_time,
                 "strikes": _is_count}


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def _ids(raw: str | None) -> list[str] | None:
    try:
        ids = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(ids, list):
        return None
    return [str(i) for i in ids if isinstance(i, str) or (isinstance(i, int) and not isinstance(i, bool))]


class StateStore:
    """Loads and saves the fetcher's state; Redis errors are the caller's to handle."""

    def __init__(self, conn: redis.Redis, keys: Keys) -> None:
        self.conn = conn
        self.keys = keys

    def read(self) -> FetcherState:
        return FetcherState.from_hashes(self._hash(self.keys.fetcher_state), self._hash(self.keys.monitored))

    def _hash(self, key: str) -> Mapping[Any, Any]:
        try:
            return self.conn.hgetall(key)
        except redis.ResponseError as error:
            if not str(error).startswith("WRONGTYPE"):
                raise
            log.warning("stored fetcher state %s is not a hash; starting afresh (the next save replaces it)", key)
            return {}

    def save(self, state: FetcherState) -> None:
        """Both hashes, whole, in one transaction; predictors no longer monitored disappear from the second."""
        own, monitored = state.to_hashes()
        pipe = self.conn.pipeline(transaction=True)
        pipe.delete(self.keys.fetcher_state)  # every field is written: what else was there (garbage) goes
        pipe.hset(self.keys.fetcher_state, mapping=own)  # type: ignore[arg-type]
        pipe.delete(self.keys.monitored)
        if monitored:
            pipe.hset(self.keys.monitored, mapping=monitored)  # type: ignore[arg-type]
        pipe.execute()

    def save_share(self, state: FetcherState, mine: list[str], *, with_selection: bool) -> None:
        """With other fetchers: this one's part of the state only, so none overwrites another's. The cycle
        times; the selection if this fetcher refreshed the leaderboard (predictors no longer selected go);
        the predictors of its share. The upstream block is written when it changes (`save_upstream`)."""
        own, monitored = state.to_hashes()
        pipe = self.conn.pipeline(transaction=True)
        pipe.hset(self.keys.fetcher_state, mapping={name: own[name] for name in _TIMES})  # type: ignore[arg-type]
        if with_selection:
            pipe.hset(self.keys.fetcher_state, "monitored", own["monitored"])
            gone = set(self.conn.hkeys(self.keys.monitored)) - {pid.encode() for pid in monitored}
            if gone:
                pipe.hdel(self.keys.monitored, *gone)
        mapping = {pid: monitored[pid] for pid in mine if pid in monitored}
        if mapping:
            pipe.hset(self.keys.monitored, mapping=mapping)  # type: ignore[arg-type]
        pipe.execute()

    def save_upstream(self, state: FetcherState) -> None:
        self.conn.hset(self.keys.fetcher_state, mapping=state.upstream_fields())  # type: ignore[arg-type]

    def save_next_poll(self, at: float) -> None:
        self.conn.hset(self.keys.fetcher_state, "next_poll_at", repr(at))
