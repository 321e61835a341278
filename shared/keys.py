"""Names of every Redis key the project uses, all under one prefix."""
from __future__ import annotations

from dataclasses import dataclass

from shared.settings import Settings

ALERTS_QUEUE = "alerts"
PROCESSOR_GROUP = "processor"


@dataclass(frozen=True)
class Keys:
    prefix: str

    @classmethod
    def of(cls, settings: Settings) -> "Keys":
        return cls(settings.redis_prefix)

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def fetched(self) -> str:
        """The stream of everything the fetcher fetched, in order: the record replay works from."""
        return self._k("stream", "fetched")

    @property
    def dead_letters(self) -> str:
        return self._k("stream", "dead")

    @property
    def watched_events(self) -> str:
        """Sorted set: event id -> kick-off, for events with an alerted tip (the fetcher polls their odds)."""
        return self._k("watch", "events")

    @property
    def odds_fetched(self) -> str:
        """Hash: watched event id -> when its odds were last answered (`fetcher.oddspolls`, the cadence's input)."""
        return self._k("fetcher", "odds", "fetched")

    @property
    def odds_missing(self) -> str:
        """Hash: watched event id -> when its odds first answered 404 (no odds offered; `fetcher.oddspolls`)."""
        return self._k("fetcher", "odds", "missing")

    @property
    def fetchers(self) -> str:
        """Sorted set: a live fetcher's name -> when it last said so (`fetcher.peers`)."""
        return self._k("fetcher", "peers")

    @property
    def leaderboard_lock(self) -> str:
        """String: the fetcher refreshing the leaderboard now (`fetcher.peers`)."""
        return self._k("fetcher", "leaderboard-lock")

    def request_budget(self, scope: str) -> str:
        """Sorted set: request slots taken in the last minute by the fetchers of `scope` (`fetcher.sharedbudget`)."""
        return self._k("fetcher", "budget", scope)

    @property
    def unsettled(self) -> str:
        """Sorted set: `<event id>:<predictor id>` -> when to look, for alerted tips still open (`shared.unsettled`)."""
        return self._k("unsettled", "tips")

    @property
    def votes_wanted(self) -> str:
        """Sorted set: event id -> kick-off, for matches with a consensus to announce (`shared.votes`)."""
        return self._k("votes", "wanted")

    @property
    def deferred_tips(self) -> str:
        """Sorted set: `<event id>:<tip key>` -> kick-off, for stored tips not alerted yet (`shared.deferred`)."""
        return self._k("deferred", "tips")

    def seen_tips(self, predictor_id: str) -> str:
        """Sorted set: tip key -> kick-off, tips of one predictor already in the stream (`fetcher.seen`)."""
        return self._k("fetcher", "seen", predictor_id)

    @property
    def monitored(self) -> str:
        """Hash: predictor id -> JSON state (nickname, last fetch, strikes, paused until)."""
        return self._k("fetcher", "predictors")

    @property
    def fetcher_state(self) -> str:
        """Hash: last cycle, next poll, leaderboard time, upstream backoff."""
        return self._k("fetcher", "state")

    def requests_minute(self, minute: int) -> str:
        """Hash: request kind -> requests the fetcher made in that minute since the epoch (`fetcher.usage`)."""
        return self._k("fetcher", "requests", str(minute))

    def heartbeat(self, process: str) -> str:
        return self._k("heartbeat", process)

    @property
    def heartbeats(self) -> str:
        return self._k("heartbeat", "*")

    def bucket(self, webhook: str) -> str:
        return self._k("ratelimit", "webhook", webhook)

    def sent_window(self, webhook: str) -> str:
        return self._k("ratelimit", "window", webhook)

    @property
    def global_block(self) -> str:
        return self._k("ratelimit", "global")

    def webhook_lock(self, webhook: str) -> str:
        return self._k("lock", "webhook", webhook)

    def drain(self, webhook: str) -> str:
        """Stream: ids of the webhook's new alerts handed to its lingering drain (the RQ job holding its lock,
        `notifier.lingering`); it exists only while a drain is registered, with the drain's lease as its TTL."""
        return self._k("drain", webhook)

    def drain_owner(self, webhook: str) -> str:
        """String: the token of the webhook's registered drain (the same lease as its stream)."""
        return self._k("drain", webhook, "owner")

    def webhook_broken(self, webhook: str) -> str:
        return self._k("webhook", "broken", webhook)

    def webhook_failing(self, webhook: str) -> str:
        """Hash: failed delivery attempts since the last success (count, since, last error), for status."""
        return self._k("webhook", "failing", webhook)

    def health_throttle(self, topic: str) -> str:
        return self._k("health", "throttle", topic)
