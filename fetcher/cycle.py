"""One fetch cycle: leaderboard when due, predictions of the monitored predictors, odds of watched events.

Requests go in rounds through the client's pool (at most HTTP_CONCURRENCY in flight; a challenge or a
429 halts what has not started): round 0 is page 0 of every predictor plus the odds; round k is page k
of the predictors whose page k-1 brought something new (`fetcher.paging`), so no page is fetched twice.
A last round refreshes the matches of deferred tips that are due (`shared.deferred`) and were on none of
the pages read: one `GET /event/{id}` per match, whose record lets the processor alert them from storage.
Then the matches of alerted tips still open after they should be over (`shared.unsettled`): one
`GET /event/{id}` each and, for a finished one, its predictors' next pages until their tip is seen.
Every request goes through the request budget (`fetcher.budget`): a round bigger than it allows is made
in batches, most urgent first, with waits between them.
"""
from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TypeVar

import redis
from pydantic import ValidationError

from fetcher import oddspolls, paging, peers, seen, share, streams, usage
from fetcher.backoff import PredictorState, Transition, record_result
from fetcher.budget import RequestBudget, by_priority
from fetcher.cadence import Cadence, odds_due
from fetcher.client import (
    FetchResult,
    SofascoreClient,
    event_path,
    odds_path,
    predictions_path,
    ranking_path,
    votes_path,
)
from fetcher.schedule import next_poll_seconds
from fetcher.sharedbudget import SharedBudget
from fetcher.selection import Filters, Predictor, select_predictors, with_targets
from fetcher.state import FetcherState, StateStore
from shared import deferred, heartbeat, unsettled, votes, watch
from shared.keys import Keys
from shared.logs import first_line
from shared.models import EventDetails, FetchKind, FetchRecord, Ranking
from shared.redisconn import refusal_name
from shared.settings import Settings
from shared.timefmt import utc_stamp

log = logging.getLogger(__name__)
T = TypeVar("T")

# Records kept in memory while Redis is away; beyond this the oldest go (a cycle writes a few dozen).
PENDING_MAX = 5000


@dataclass(frozen=True)
class Job:
    """One request of a cycle and what its payload is in the stream."""

    kind: FetchKind
    subject: str
    path: str
    predictor: Predictor | None = None
    page: int = 0
    kickoff: float | None = None  # odds, votes: the event's kick-off (which go first under the budget)
    last_fetch: float | None = None  # predictions: the predictor's last good answer (likewise)
    settles: int | None = None  # predictions read to settle this match's tip; event: a match to settle

    @property
    def label(self) -> str:
        if self.kind == "predictions" and self.predictor is not None:
            return f"predictions for {self.predictor.label}" + (f", page {self.page}" if self.page else "")
        if self.kind == "odds":
            return f"odds for event {self.subject}"
        if self.kind == "event":
            return f"event {self.subject}" + (" (to settle its tips)" if self.settles is not None else "")
        if self.kind == "votes":
            return f"crowd votes for event {self.subject}"
        return self.kind


# A page's upcoming tips (predictor id, tip key -> kick-off), marked seen with the page's stream write.
Marks = tuple[str, dict[str, float]]


@dataclass
class CycleReport:
    """What a cycle did, for the caller's log line and for tests."""

    requests: int = 0
    written: int = 0
    failures: int = 0
    skipped_blocked: bool = False
    halted: bool = False
    transitions: list[Transition] = field(default_factory=list)


class Fetcher:
    """The fetcher's state and its cycle. The clock is injected so tests can move time."""

    def __init__(
        self,
        settings: Settings,
        conn: redis.Redis,
        client: SofascoreClient,
        *,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        # A long-running fetcher's name among its peers (`fetcher.peers`): it polls its share of the work.
        # None for a one-off run, which polls everything.
        self.name = name
        self.peers: list[str] = []
        self.live_seconds = heartbeat.Timing.of(settings).timeout  # a peer silent this long is gone
        self._refreshed_leaderboard = False  # this cycle: its selection is this fetcher's to store
        self.owned = 0  # the predictors of this fetcher's share, at its last cycle (its heartbeat says it)
        self.conn = conn
        self.client = client
        self.clock = clock
        self.keys = Keys.of(settings)
        self.filters = Filters.of(settings)
        self.state = FetcherState()
        self._pending: deque[tuple[FetchRecord, Marks | None]] = deque(maxlen=PENDING_MAX)
        # Each predictor's tips already fetched (their keys): read from `fetcher.seen` every cycle,
        # remembered here so a Redis outage does not make the fetcher forget what it read.
        self._known: dict[str, set[str]] = {}
        self._read_this_cycle: set[str] = set()  # tip keys on the pages read this cycle
        self._stopping = threading.Event()
        self._halt = threading.Event()
        self._redis_failed = False
        self._dropping = False
        self.cadence = Cadence.of(settings)
        # Odds answers not yet saved (`fetcher.oddspolls`): event -> time, events newly without odds, with odds again.
        self._odds_answered: dict[str, float] = {}
        self._odds_gone: set[str] = set()
        self._odds_back: set[str] = set()
        self._odds_missing: set[str] = set()  # events known to have no odds (their 404 was logged)
        self._votes_answered: set[str] = set()  # events whose crowd votes are in the stream, to take off the set
        # Alerted tips to settle this cycle (`shared.unsettled`): match -> predictors; those looked for.
        self._settling: dict[int, set[str]] = {}
        self._looked: set[tuple[int, str]] = set()
        self.budget = RequestBudget(settings.upstream_max_requests_per_minute)
        scope = "global" if settings.upstream_budget_scope == "global" else f"host:{socket.gethostname()}"
        self.shared_budget = SharedBudget(conn, self.keys.request_budget(scope),
                                          settings.upstream_max_requests_per_minute)
        # How a spread cycle waits for the budget; `fetcher.main` makes it beat the heartbeat meanwhile.
        self.sleep: Callable[[float], object] = self._stopping.wait

    # -- state in Redis -----------------------------------------------------------------------
    @property
    def store(self) -> StateStore:
        return StateStore(self.conn, self.keys)

    def load_state(self) -> None:
        """Take back what a previous run stored, so a restart keeps pauses and blocks. Raises on Redis errors."""
        self.state = self.store.read()
        for pid in self.state.unreadable:
            log.warning("stored state of predictor %s is unreadable; starting it afresh", pid)
        self.state.unreadable = []
        if self.state.upstream.active:
            log.info("upstream backoff restored: paused until %s", utc_stamp(self.state.upstream.until))

    def save_state(self) -> bool:
        """Write the state hashes in one transaction; False if Redis is away."""
        if self._redis_failed:
            return False
        try:
            if self.shared:
                self.store.save_share(self.state, self._mine(self.state.predictors, str),
                                      with_selection=self._refreshed_leaderboard)
                self._refreshed_leaderboard = False
            else:
                self.store.save(self.state)
        except redis.RedisError as error:
            self._redis_down("state not saved", error)
            return False
        return True

    # -- sharing the work with other fetchers ------------------------------------------------------
    @property
    def shared(self) -> bool:
        """Whether other fetchers share the work (and the stored state) with this one."""
        return self.name is not None and len(self.peers) > 1

    def _mine(self, items: Iterable[T], key: Callable[[T], str]) -> list[T]:
        return share.mine(items, self.name or "", self.peers, key)

    def _join_peers(self, now: float) -> None:
        """Say this fetcher is alive and learn who shares the work; with others, take up the state they
        stored (leaderboard selection, upstream block, predictors' strikes and pauses): a block one of them
        met stops this one too."""
        if self.name is None or self._redis_failed:
            return
        try:
            self.peers = peers.alive(self.conn, self.keys, self.name, now, self.live_seconds)
            if self.shared:
                self.state.adopt(self.store.read())
        except redis.RedisError as error:
            self._redis_down("peers not read, polling the previous share", error)

    def leave_peers(self) -> None:
        """A clean stop: the other fetchers take this one's share at their next cycle."""
        if self.name is not None:
            try:
                peers.leave(self.conn, self.keys, self.name)
            except redis.RedisError:
                pass

    def _share_upstream(self) -> None:
        """With other fetchers, the upstream block as it changed: the others stop at their next cycle."""
        if self.shared and not self._redis_failed:
            try:
                self.store.save_upstream(self.state)
            except redis.RedisError as error:
                self._redis_down("upstream block not shared", error)

    def _may_refresh_leaderboard(self) -> bool:
        if not self.shared:
            return True
        try:
            return peers.take_leaderboard(self.conn, self.keys, self.name or "")
        except redis.RedisError as error:
            self._redis_down("leaderboard lock not taken, leaderboard not refreshed", error)
            return False

    def schedule_next(self, at: float) -> None:
        self.state.next_poll_at = at
        if self._redis_failed:
            return
        try:
            self.store.save_next_poll(at)
        except redis.RedisError as error:
            self._redis_down("next poll time not saved", error)

    def _redis_down(self, what: str, error: BaseException) -> None:
        """One line per cycle; no further Redis call this cycle (each could take seconds to fail).

        State and fetched records stay in memory and are written on the next cycle.
        """
        if not self._redis_failed:
            log.error("Redis unavailable (%s: %s); %s, keeping %d record(s) in memory, retrying next cycle",
                      refusal_name(error), first_line(error, 200), what, len(self._pending))
            self._redis_failed = True

    # -- the stream -----------------------------------------------------------------------------
    def _emit(self, record: FetchRecord, marks: Marks | None = None) -> None:
        full = len(self._pending) == self._pending.maxlen
        if full and not self._dropping:
            log.error("%d fetched records wait for Redis: dropping the oldest from now on", len(self._pending))
        self._dropping = full  # said again after Redis took some of the backlog
        self._pending.append((record, marks))
        self.flush()

    def flush(self) -> int:
        """Write pending records in order; stops at the first Redis error (and stays off until the next cycle)."""
        written = 0
        while self._pending and not self._redis_failed:
            record, marks = self._pending[0]
            also = None if marks is None else (lambda pipe, m=marks: seen.mark(pipe, self.keys, *m))
            try:
                streams.append(self.conn, self.keys, record, self.settings.stream_retention_days, also=also)
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
    def monitored(self) -> list[Predictor]:
        """The leaderboard selection plus TARGET_USERS (targets are polled even with no leaderboard yet)."""
        known = {pid: s.nickname for pid, s in self.state.predictors.items()}
        selected = [Predictor(pid, known.get(pid)) for pid in self.state.selected or []]
        return with_targets(selected, self.settings.target_users, known)

    def _leaderboard_due(self, now: float) -> bool:
        if self.state.leaderboard_at is None:
            return True
        return now - self.state.leaderboard_at >= self.settings.leaderboard_refresh_minutes * 60

    def _prediction_jobs(self, now: float) -> list[Job]:
        jobs = []
        owned = self._mine(self.monitored(), lambda p: p.id)
        self.owned = len(owned)
        for predictor in owned:
            state = self.state.predictors.setdefault(predictor.id, PredictorState(nickname=predictor.nickname))
            if predictor.nickname:
                state.nickname = predictor.nickname
            if state.is_paused(now):
                log.debug("predictions for %s: paused until %s", predictor.label, utc_stamp(state.paused_until))
                continue
            jobs.append(Job("predictions", predictor.id, predictions_path(predictor.id), predictor,
                            last_fetch=state.last_fetch))
        self._load_known([j.subject for j in jobs], now)
        return jobs

    def _load_known(self, predictor_ids: list[str], now: float) -> None:
        """Refresh what is known of these predictors' tips; with Redis away, what this process remembers stays."""
        if self._redis_failed:
            return
        try:
            stored = seen.read(self.conn, self.keys, predictor_ids, now, self.settings.match_grace_period_minutes)
        except redis.RedisError as error:
            self._redis_down("seen tips not read, reading no deeper than page 0 of unknown predictors", error)
            return
        # Swapped a predictor at a time, so the old and the new keys of everyone (20,000 of each with 1,000
        # predictors) are never held together: that peak would stay in the process's memory.
        previous, self._known = self._known, {}
        for pid, tips in stored:
            previous.pop(pid, None)
            self._known[pid] = tips

    def _odds_jobs(self, now: float) -> list[Job]:
        """Watched events still to kick off whose odds are due by the cadence (`fetcher.cadence`), one request
        per event; those already kicked off leave the set (`shared.watch`)."""
        if self._redis_failed:
            return []
        try:
            events = watch.due(self.conn, self.keys, now)
            fetched, missing = oddspolls.read(self.conn, self.keys, events)
        except redis.RedisError as error:
            self._redis_down("watched events not read, odds skipped", error)
            return []
        fetched.update(self._odds_answered)  # answers not saved yet (Redis failed at the last save)
        self._odds_missing = (missing | self._odds_gone) - self._odds_back
        return [Job("odds", event, odds_path(event), kickoff=kickoff)
                for event, kickoff in self._mine(events.items(), _first)
                if odds_due(self.cadence, kickoff, now, fetched.get(event), event in self._odds_missing)]

    def _odds_answer(self, job: Job, result: FetchResult, now: float) -> bool:
        """Note an odds answer for the cadence; True if it is a 404 already logged for this event (say nothing)."""
        if result.kind not in ("ok", "not_found"):
            return False  # no answer: asked again next cycle
        event = job.subject
        self._odds_answered[event] = now
        if result.ok:
            if event in self._odds_missing:
                self._odds_missing.discard(event)
                self._odds_gone.discard(event)
                self._odds_back.add(event)
            return False
        if event in self._odds_missing:
            log.debug("%s: still no odds (HTTP 404)", job.label)
            return True
        self._odds_missing.add(event)
        self._odds_gone.add(event)
        self._odds_back.discard(event)
        return False

    def save_odds_polls(self) -> None:
        """The odds answers of this cycle, in one round trip; kept for the next cycle if Redis is away."""
        if self._redis_failed or not (self._odds_answered or self._odds_back):
            return
        try:
            oddspolls.record(self.conn, self.keys, self._odds_answered, self._odds_gone, self._odds_back)
        except redis.RedisError as error:
            self._redis_down("odds poll times not saved", error)
            return
        self._odds_answered, self._odds_gone, self._odds_back = {}, set(), set()

    def _votes_jobs(self, now: float) -> list[Job]:
        """The crowd votes of matches with a consensus to announce (`shared.votes`), once each, before kick-off."""
        if self._redis_failed:
            return []
        try:
            wanted = votes.due(self.conn, self.keys, now)
        except redis.RedisError as error:
            self._redis_down("wanted votes not read", error)
            return []
        return [Job("votes", event, votes_path(event), kickoff=kickoff)
                for event, kickoff in self._mine(wanted.items(), _first) if event not in self._votes_answered]

    def _settle_jobs(self, now: float) -> list[Job]:
        """The matches of alerted tips still open after they should be over, one `GET /event/{id}` each."""
        self._settling = {}
        if self._redis_failed:
            return []
        try:
            items = unsettled.due(self.conn, self.keys, now)
        except redis.RedisError as error:
            self._redis_down("open tips not read, none settled", error)
            return []
        for event, predictor_id in self._mine(items, lambda item: str(item[0])):
            self._settling.setdefault(event, set()).add(predictor_id)
        return [Job("event", str(event), event_path(event), settles=event) for event in self._settling]

    def _settle_next(self, job: Job, result: FetchResult) -> list[Job]:
        """After a match to settle answered: when it is finished, its predictors' pages from page 1 (page 0 was
        read this cycle) until their tip on it is seen; either way, looked for (`shared.unsettled`)."""
        event = job.settles
        if event is None or result.kind not in ("ok", "not_found"):
            return []  # no answer: asked again next cycle
        predictors = self._settling.get(event, set())
        self._looked.update((event, pid) for pid in predictors)
        try:
            finished = result.ok and EventDetails.model_validate_json(result.text).event.status.type == "finished"
        except (ValidationError, ValueError):
            finished = False  # the processor dead-letters the record and says why
        if not finished:
            return []
        known = {pid: s.nickname for pid, s in self.state.predictors.items()}
        return [Job("predictions", pid, predictions_path(pid, 1), Predictor(pid, known.get(pid)), 1, settles=event)
                for pid in sorted(predictors)]

    def save_looked(self) -> None:
        """When to look again for the open tips looked for this cycle; kept for the next cycle if Redis is away."""
        if self._redis_failed or not self._looked:
            return
        try:
            unsettled.checked(self.conn, self.keys, self._looked, self.clock() + unsettled.RETRY_SECONDS)
        except redis.RedisError as error:
            self._redis_down("open tips' next look not saved", error)
            return
        self._looked = set()

    def save_votes_answered(self) -> None:
        """Take the matches whose votes were written off the wanted set; kept for the next cycle if Redis is away."""
        if self._redis_failed or not self._votes_answered:
            return
        try:
            votes.done(self.conn, self.keys, self._votes_answered)
        except redis.RedisError as error:
            self._redis_down("answered votes not taken off", error)
            return
        self._votes_answered = set()

    def _refresh_jobs(self, now: float) -> list[Job]:
        """The matches of due deferred tips that were on none of this cycle's pages, one request per match.

        A tip on a page read this cycle needs none: that page is as fresh, and the processor judges it there.
        """
        if self._redis_failed:
            return []
        try:
            due = deferred.due(self.conn, self.keys, now, self.settings.time_lookahead_hours,
                               self.settings.match_grace_period_minutes)
        except redis.RedisError as error:
            self._redis_down("deferred tips not read, no match refreshed", error)
            return []
        events = dict.fromkeys(event for event, key in due if key not in self._read_this_cycle)
        return [Job("event", str(event), event_path(event)) for event in self._mine(events, str)]

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
        self._join_peers(now)
        self.state.last_cycle_at = now
        self._read_this_cycle = set()
        self.flush()
        if self.state.upstream.is_blocked(now):
            log.info("upstream paused for another %.0f s; no requests this cycle", self.state.upstream.remaining(now))
            report.skipped_blocked = True
        else:
            if self._leaderboard_due(now) and self._may_refresh_leaderboard():
                self._refresh_leaderboard(report)
            if not self._halt.is_set():
                now = self.clock()
                jobs = by_priority(self._prediction_jobs(now) + self._odds_jobs(now) + self._votes_jobs(now), now,
                                   self.cadence.every_cycle_within)
                self._say_if_spread(len(jobs), now)
                while jobs and not self._halt.is_set():
                    jobs = self._fetch(jobs, report)
                if not self._halt.is_set():
                    self._fetch(self._refresh_jobs(self.clock()), report)
                jobs = self._settle_jobs(self.clock()) if not self._halt.is_set() else []
                while jobs and not self._halt.is_set():
                    jobs = self._fetch(jobs, report)
            report.halted = self._halt.is_set()
        self._read_this_cycle = set()  # needed within the cycle only: not kept (20,000 keys with 1,000 predictors)
        self.save_odds_polls()
        self.save_votes_answered()
        self.save_looked()
        self.save_state()
        return report

    def _refresh_leaderboard(self, report: CycleReport) -> None:
        job = Job("leaderboard", "top", ranking_path())
        if self.state.selected is None:
            fallback = "polling TARGET_USERS only" if self.settings.target_users else "nobody to poll yet"
        else:
            fallback = f"keeping the previous {len(self.state.selected)} predictor(s)"
        for _, result in self._requests([job]):
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
        self.state.selected = [p.id for p in selected]
        self._refreshed_leaderboard = True
        self.state.leaderboard_at = self.clock()
        keep = {p.id for p in selected} | set(self.settings.target_users)
        # Predictors that left the selection are forgotten; the hash shows who is monitored now.
        self.state.predictors = {pid: s for pid, s in self.state.predictors.items() if pid in keep}
        for predictor in selected:
            state = self.state.predictors.setdefault(predictor.id, PredictorState())
            state.nickname = predictor.nickname or state.nickname
        log.info("leaderboard: monitoring %d predictor(s): %s", len(selected), ", ".join(p.label for p in selected))

    def _fetch(self, jobs: list[Job], report: CycleReport) -> list[Job]:
        """One round of requests; returns the next round (the next page of predictors with something new)."""
        follow: list[Job] = []
        for job, result in self._requests(jobs):
            marks = None
            if result.ok and job.kind == "predictions" and job.predictor is not None:
                marks, more = self._read_page(job, result.text)
                if more is not None:
                    follow.append(more)
            if job.kind == "event" and job.settles is not None:
                follow += self._settle_next(job, result)
            self._handle(job, result, report, marks=marks)
        return follow

    def _requests(self, jobs: list[Job]) -> Iterator[tuple[Job, FetchResult]]:
        """Answers as they come, the requests started no faster than the budget allows (`fetcher.budget`)."""
        queue = jobs
        while queue and not self._halt.is_set():
            now = self.clock()
            allowed, wait, slots = self._allowance(len(queue), now)
            if allowed == 0:
                self.sleep(wait)
                continue
            batch, queue = queue[:allowed], queue[allowed:]
            made: Counter[str] = Counter()
            for index, result in self.client.fetch_many([j.path for j in batch], self._halt):
                made[batch[index].kind] += 1
                yield batch[index], result
            finished = self.clock()
            self.budget.spend(made.total(), finished)
            self._slots_used(slots, finished)
            self._count(made, finished)

    def _allowance(self, wanted: int, now: float) -> tuple[int, float, list[str]]:
        """How many requests may start now, else how long to wait; with other fetchers the budget is theirs
        too (`fetcher.sharedbudget`, with its slots' tokens), this fetcher's own when Redis is away."""
        if self.shared and self.budget.limited and not self._redis_failed:
            try:
                slots, wait = self.shared_budget.take(wanted, now)
                return len(slots), wait, slots
            except redis.RedisError as error:
                self._redis_down("the shared request budget not read, keeping to this fetcher's own", error)
        allowed = min(self.budget.allowance(now), wanted)
        return allowed, self.budget.wait_seconds(now) if allowed == 0 else 0.0, []

    def _slots_used(self, slots: list[str], finished: float) -> None:
        if slots and not self._redis_failed:
            try:
                self.shared_budget.finished(slots, finished)
            except redis.RedisError as error:
                self._redis_down("the shared request budget not updated", error)

    def _say_if_spread(self, requests: int, now: float) -> None:
        """One line when this cycle's first round is more than the budget lets start at once."""
        spread = self.budget.spread_minutes(requests, now)
        if spread:
            log.info("request budget: %d requests due this cycle, UPSTREAM_MAX_REQUESTS_PER_MINUTE=%d: spreading"
                     " them over about %.0f more min, nearest kick-offs and longest-unpolled predictors first",
                     requests, self.budget.per_minute, spread)

    def _count(self, made: Counter[str], at: float) -> None:
        """Requests made, by kind, for status (`fetcher.usage`)."""
        if self._redis_failed or not made:
            return
        try:
            usage.record(self.conn, self.keys, made, at)
        except redis.RedisError as error:
            self._redis_down("request counts not saved", error)

    def _read_page(self, job: Job, text: str) -> tuple[Marks | None, Job | None]:
        """What a page of tips marks as seen, and the next page to read if this one brought something new."""
        assert job.predictor is not None
        pid = job.predictor.id
        view = paging.PageView.of(pid, text, self.clock(), self.settings.match_grace_period_minutes)
        if view is None:
            return None, None
        self._read_this_cycle.update(view.keys)
        known = self._known.get(pid)
        if job.settles is not None:
            verdict = paging.dig_verdict(view, job.page, job.settles, self.settings.prediction_max_pages)
        else:
            verdict = paging.verdict(view, job.page, known, self.settings.prediction_max_pages)
        self._known.setdefault(pid, set()).update(view.upcoming)
        if verdict == "bound" and job.settles is not None:
            log.info("predictions for %s: their tip on event %d is not on the first %d pages (PREDICTION_MAX_PAGES);"
                     " it stays open", job.predictor.label, job.settles, self.settings.prediction_max_pages)
        elif verdict == "bound":
            log.warning("predictions for %s: page %d still brought new tips and PREDICTION_MAX_PAGES (%d) is"
                        " reached; tips on later pages are not read", job.predictor.label, job.page,
                        self.settings.prediction_max_pages)
        more = None
        if verdict == "next":
            more = Job("predictions", pid, predictions_path(pid, job.page + 1), job.predictor, job.page + 1,
                       settles=job.settles)
        return (pid, view.upcoming), more

    def _handle(self, job: Job, result: FetchResult, report: CycleReport, *, fallback: str | None = None,
                marks: Marks | None = None) -> None:
        """Record one answer: the payload into the stream, the verdict into the backoff state, one log line."""
        now = self.clock()
        report.requests += 1
        state = self.state.predictors.get(job.predictor.id) if job.predictor else None
        if job.kind == "votes" and result.kind == "not_found":
            result = FetchResult("ok", 404, text="{}")  # a match nobody voted on: the consensus goes without
        if result.ok:
            if job.kind == "odds":
                self._odds_answer(job, result, now)
            if job.kind == "votes":
                self._votes_answered.add(job.subject)
            self._emit(FetchRecord(kind=job.kind, subject=job.subject, fetched_at=now, payload=result.text,
                                   page=job.page), marks)
            report.written += 1
            self.state.last_success_at = now
            if state is not None:
                record_result(state, "ok", now)
            self._transition(self.state.upstream.on_success(now), report)
            return
        report.failures += 1
        if job.kind == "odds" and self._odds_answer(job, result, now):
            return
        consequences = []
        if result.blocks_upstream:
            self._transition(self.state.upstream.on_block(now, result.retry_after, reason=result.describe()), report)
            self._share_upstream()
            consequences.append(f"upstream paused {self.state.upstream.remaining(now):.0f} s")
        if state is not None:
            effect = record_result(state, result.kind, now)
            if effect:
                consequences.append(effect)
        if fallback:
            consequences.append(fallback)
        if job.kind == "odds" and result.kind == "not_found":
            consequences.append(f"no odds offered: asked again at most every {self.settings.odds_slow_every_minutes:g}"
                                " min, and this is not logged again for it")
        log.warning("%s: %s%s", job.label, result.describe(), "".join(f"; {c}" for c in consequences))

    def _transition(self, transition: Transition | None, report: CycleReport) -> None:
        """A start or end of the global backoff becomes a health entry (the processor alerts on it)."""
        if transition is None:
            return
        report.transitions.append(transition)
        self._share_upstream()
        subject = streams.HEALTH_BLOCKED if transition.kind == "blocked_started" else streams.HEALTH_RECOVERED
        self._emit(streams.health_record(subject, transition.message, transition.until, transition.at))
        if transition.kind == "blocked_ended":
            log.info("upstream: %s", transition.message)

    # -- when next --------------------------------------------------------------------------------
    def next_delay(self, rng: random.Random) -> float:
        """Seconds to the next cycle: the backoff's end while blocked, else the schedule."""
        now = self.clock()
        if self.state.upstream.is_blocked(now):
            return max(self.state.upstream.remaining(now), 1.0)
        return next_poll_seconds(
            datetime.fromtimestamp(now, timezone.utc),
            scan_interval_minutes=self.settings.scan_interval_minutes,
            tz=self.settings.tz,
            rng=rng,
        )



def _first(pair: tuple[str, float]) -> str:
    return pair[0]
