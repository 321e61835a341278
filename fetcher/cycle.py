"""One fetch cycle: leaderboard when due, predictions of the monitored predictors, odds of watched events."""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import redis
from pydantic import ValidationError

from fetcher import streams
from fetcher.backoff import PredictorState, Transition, UpstreamBackoff, record_result
from fetcher.client import FetchResult, SofascoreClient, odds_path, predictions_path, ranking_path
from fetcher.schedule import next_poll_seconds
from fetcher.selection import Filters, Predictor, select_predictors, with_targets
from shared import watch
from shared.keys import Keys
from shared.logs import error_line
from shared.models import FetchKind, FetchRecord, Ranking
from shared.redisconn import decoded, opt_float, text
from shared.settings import Settings

log = logging.getLogger(__name__)

# Records kept in memory while Redis is away; beyond this the oldest go (a cycle writes a few dozen).
PENDING_MAX = 5000


@dataclass(frozen=True)
class Job:
    """One request of a cycle and what its payload is in the stream."""

    kind: FetchKind
    subject: str
    path: str
    predictor: Predictor | None = None

    @property
    def label(self) -> str:
        if self.kind == "predictions" and self.predictor is not None:
            return f"predictions for {self.predictor.label}"
        if self.kind == "odds":
            return f"odds for event {self.subject}"
        return self.kind


@dataclass
class CycleReport:
    """What a cycle did, for the caller's log line and for tests."""

    requests: int = 0
    written: int = 0
    failures: int = 0
    skipped_blocked: bool = False
    halted: bool = False
    transitions: list[Transition] = field(default_factory=list)


def _fmt_ts(value: float | None) -> str:
    return "" if value is None else repr(value)


class Fetcher:
    """The fetcher's state and its cycle. The clock is injected so tests can move time."""

    def __init__(
        self,
        settings: Settings,
        conn: redis.Redis,
        client: SofascoreClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.conn = conn
        self.client = client
        self.clock = clock
        self.keys = Keys.of(settings)
        self.filters = Filters.of(settings)
        self.upstream = UpstreamBackoff()
        self.predictors: dict[str, PredictorState] = {}
        # The last leaderboard selection; None until a leaderboard was fetched (or loaded).
        self.selected: list[Predictor] | None = None
        self.leaderboard_at: float | None = None
        self.last_cycle_at: float | None = None
        self.last_success_at: float | None = None  # last good answer from Sofascore, for `sofamon status`
        self.next_poll_at: float | None = None
        self._pending: deque[FetchRecord] = deque(maxlen=PENDING_MAX)
        self._stopping = threading.Event()
        self._halt = threading.Event()
        self._redis_failed = False

    # -- state in Redis -----------------------------------------------------------------------
    def load_state(self) -> None:
        """Take back what a previous run stored, so a restart keeps pauses and blocks. Raises on Redis errors."""
        fields = decoded(self.conn.hgetall(self.keys.fetcher_state))
        stored = {text(k): v for k, v in self.conn.hgetall(self.keys.monitored).items()}
        self.upstream = UpstreamBackoff.from_fields(fields)
        self.leaderboard_at = opt_float(fields.get("leaderboard_at"))
        self.last_cycle_at = opt_float(fields.get("last_cycle_at"))
        self.last_success_at = opt_float(fields.get("last_success_at"))
        self.next_poll_at = opt_float(fields.get("next_poll_at"))
        self.predictors = {}
        for pid, raw in stored.items():
            try:
                self.predictors[pid] = PredictorState.from_json(raw)
            except (ValueError, TypeError):
                log.warning("stored state of predictor %s is unreadable; starting it afresh", pid)
        ids = json.loads(fields["monitored"]) if fields.get("monitored") else None
        if isinstance(ids, list):
            self.selected = [Predictor(str(i), self._nickname(str(i))) for i in ids]
        if self.upstream.active:
            log.info("upstream backoff restored: paused until %s", _iso(self.upstream.until))

    def state_fields(self) -> dict[str, str]:
        fields = {
            "last_cycle_at": _fmt_ts(self.last_cycle_at),
            "last_success_at": _fmt_ts(self.last_success_at),
            "next_poll_at": _fmt_ts(self.next_poll_at),
            "leaderboard_at": _fmt_ts(self.leaderboard_at),
            "monitored": json.dumps(None if self.selected is None else [p.id for p in self.selected]),
        }
        fields.update(self.upstream.to_fields())
        return fields

    def save_state(self) -> bool:
        """Write the state hash and the monitored hash in one transaction; False if Redis is away."""
        if self._redis_failed:
            return False
        try:
            pipe = self.conn.pipeline(transaction=True)
            pipe.hset(self.keys.fetcher_state, mapping=self.state_fields())  # type: ignore[arg-type]
            pipe.delete(self.keys.monitored)
            if self.predictors:
                pipe.hset(self.keys.monitored, mapping={pid: s.to_json() for pid, s in self.predictors.items()})
            pipe.execute()
        except redis.RedisError as error:
            self._redis_down("state not saved", error)
            return False
        return True

    def schedule_next(self, at: float) -> None:
        self.next_poll_at = at
        if self._redis_failed:
            return
        try:
            self.conn.hset(self.keys.fetcher_state, "next_poll_at", repr(at))
        except redis.RedisError as error:
            self._redis_down("next poll time not saved", error)

    def _redis_down(self, what: str, error: BaseException) -> None:
        """One line per cycle; no further Redis call this cycle (each could take seconds to fail).

        State and fetched records stay in memory and are written on the next cycle.
        """
        if not self._redis_failed:
            log.error("Redis unavailable (%s); %s, keeping %d record(s) in memory, retrying next cycle",
                      error_line(error, 200), what, len(self._pending))
            self._redis_failed = True

    # -- the stream -----------------------------------------------------------------------------
    def _emit(self, record: FetchRecord) -> None:
        self._pending.append(record)
        self.flush()

    def flush(self) -> int:
        """Write pending records in order; stops at the first Redis error (and stays off until the next cycle)."""
        written = 0
        while self._pending and not self._redis_failed:
            try:
                streams.append(self.conn, self.keys, self._pending[0], self.settings.stream_retention_days)
            except redis.RedisError as error:
                self._redis_down("stream not written", error)
                break
            self._pending.popleft()
            written += 1
        return written

    def flush_pending(self) -> int:
        """Outside a cycle (e.g. at shutdown): try Redis again even if it failed during the last cycle."""
        self._redis_failed = False
        return self.flush()

    @property
    def pending(self) -> int:
        """Fetched records not yet in the stream (Redis was away)."""
        return len(self._pending)

    # -- who and what to fetch ------------------------------------------------------------------
    def _nickname(self, pid: str) -> str | None:
        state = self.predictors.get(pid)
        return state.nickname if state else None

    def monitored(self) -> list[Predictor]:
        """The leaderboard selection plus TARGET_USERS (targets are polled even with no leaderboard yet)."""
        known = {pid: s.nickname for pid, s in self.predictors.items()}
        return with_targets(list(self.selected or []), self.settings.target_users, known)

    def _leaderboard_due(self, now: float) -> bool:
        if self.leaderboard_at is None:
            return True
        return now - self.leaderboard_at >= self.settings.leaderboard_refresh_minutes * 60

    def _prediction_jobs(self, now: float) -> list[Job]:
        jobs = []
        for predictor in self.monitored():
            state = self.predictors.setdefault(predictor.id, PredictorState(nickname=predictor.nickname))
            if predictor.nickname:
                state.nickname = predictor.nickname
            if state.is_paused(now):
                log.debug("predictions for %s: paused until %s", predictor.label, _iso(state.paused_until))
                continue
            jobs.append(Job("predictions", predictor.id, predictions_path(predictor.id), predictor))
        return jobs

    def _odds_jobs(self, now: float) -> list[Job]:
        """Watched events still to kick off; those already kicked off leave the set (`shared.watch`)."""
        if self._redis_failed:
            return []
        try:
            events = watch.due(self.conn, self.keys, now)
        except redis.RedisError as error:
            self._redis_down("watched events not read, odds skipped", error)
            return []
        return [Job("odds", event, odds_path(event)) for event in events]

    # -- the cycle --------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Let the requests in hand finish, start no new one (safe to call from a signal handler)."""
        self._stopping.set()
        self._halt.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run_cycle(self) -> CycleReport:
        report = CycleReport()
        self._redis_failed = False
        self._halt = threading.Event()
        if self._stopping.is_set():
            return report
        now = self.clock()
        self.last_cycle_at = now
        self.flush()
        if self.upstream.is_blocked(now):
            log.info("upstream paused for another %.0f s; no requests this cycle", self.upstream.remaining(now))
            report.skipped_blocked = True
        else:
            if self._leaderboard_due(now):
                self._refresh_leaderboard(report)
            if not self._halt.is_set():
                now = self.clock()
                self._fetch(self._prediction_jobs(now) + self._odds_jobs(now), report)
            report.halted = self._halt.is_set()
        self.save_state()
        return report

    def _refresh_leaderboard(self, report: CycleReport) -> None:
        job = Job("leaderboard", "top", ranking_path())
        if self.selected is None:
            fallback = "polling TARGET_USERS only" if self.settings.target_users else "nobody to poll yet"
        else:
            fallback = f"keeping the previous {len(self.selected)} predictor(s)"
        for _, result in self.client.fetch_many([job.path], self._halt):
            self._handle(job, result, report, fallback=fallback)
            if result.ok:
                self._apply_leaderboard(result.text, fallback)

    def _apply_leaderboard(self, text: str, fallback: str) -> None:
        try:
            ranking = Ranking.model_validate_json(text)
        except ValidationError as error:
            log.warning("leaderboard: unexpected JSON (%d validation error(s)); %s", error.error_count(), fallback)
            return
        if ranking.skipped:
            log.warning("leaderboard: %d malformed entr%s left out (first: %s)", len(ranking.skipped),
                        "y" if len(ranking.skipped) == 1 else "ies", ranking.skipped[0])
        if not ranking.ranking:
            # An empty leaderboard is Sofascore having a bad moment, not nobody worth following.
            log.warning("leaderboard: no usable entries; %s", fallback)
            return
        selected = select_predictors(ranking.ranking, self.filters, self.settings.target_users)
        self.selected = selected
        self.leaderboard_at = self.clock()
        keep = {p.id for p in selected} | set(self.settings.target_users)
        # Predictors that left the selection are forgotten; the hash shows who is monitored now.
        self.predictors = {pid: s for pid, s in self.predictors.items() if pid in keep}
        for predictor in selected:
            state = self.predictors.setdefault(predictor.id, PredictorState())
            state.nickname = predictor.nickname or state.nickname
        log.info("leaderboard: monitoring %d predictor(s): %s", len(selected), ", ".join(p.label for p in selected))

    def _fetch(self, jobs: list[Job], report: CycleReport) -> None:
        for index, result in self.client.fetch_many([j.path for j in jobs], self._halt):
            self._handle(jobs[index], result, report)

    def _handle(self, job: Job, result: FetchResult, report: CycleReport, *, fallback: str | None = None) -> None:
        """Record one answer: the payload into the stream, the verdict into the backoff state, one log line."""
        now = self.clock()
        report.requests += 1
        state = self.predictors.get(job.predictor.id) if job.predictor else None
        if result.ok:
            self._emit(FetchRecord(kind=job.kind, subject=job.subject, fetched_at=now, payload=result.text))
            report.written += 1
            self.last_success_at = now
            if state is not None:
                record_result(state, "ok", now)
            self._transition(self.upstream.on_success(now), report)
            return
        report.failures += 1
        consequences = []
        if result.blocks_upstream:
            self._transition(self.upstream.on_block(now, result.retry_after, reason=result.describe()), report)
            consequences.append(f"upstream paused {self.upstream.remaining(now):.0f} s")
        if state is not None:
            effect = record_result(state, result.kind, now)
            if effect:
                consequences.append(effect)
        if fallback:
            consequences.append(fallback)
        log.warning("%s: %s%s", job.label, result.describe(), "".join(f"; {c}" for c in consequences))

    def _transition(self, transition: Transition | None, report: CycleReport) -> None:
        """A start or end of the global backoff becomes a health entry (the processor alerts on it)."""
        if transition is None:
            return
        report.transitions.append(transition)
        subject = streams.HEALTH_BLOCKED if transition.kind == "blocked_started" else streams.HEALTH_RECOVERED
        self._emit(streams.health_record(subject, transition.message, transition.until, transition.at))
        if transition.kind == "blocked_ended":
            log.info("upstream: %s", transition.message)

    # -- when next --------------------------------------------------------------------------------
    def next_delay(self, rng: random.Random) -> float:
        """Seconds to the next cycle: the backoff's end while blocked, else the schedule."""
        now = self.clock()
        if self.upstream.is_blocked(now):
            return max(self.upstream.remaining(now), 1.0)
        return next_poll_seconds(
            datetime.fromtimestamp(now, timezone.utc),
            scan_interval_minutes=self.settings.scan_interval_minutes,
            tz=self.settings.tz,
            rng=rng,
        )


def _iso(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
