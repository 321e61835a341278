"""The shared Discord rate limiter: its Lua scripts on real Redis."""
from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable

import pytest
import redis

from notifier.discord import RateLimitHeaders, parse_headers
from notifier.ratelimit import RateLimiter
from shared.keys import Keys
from shared.redisconn import connect
from shared.settings import Settings
from tests.commandcount import CommandCounter

T0 = 1_800_000_000.0


def headers(limit: int, remaining: int, reset_after: float, bucket: str = "b1") -> RateLimitHeaders:
    """What the Discord client reads from an answer with these headers."""
    return parse_headers({"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                          "X-RateLimit-Reset-After": f"{reset_after:.3f}", "X-RateLimit-Bucket": bucket})


@pytest.fixture
def keys() -> Keys:
    return Keys(f"rl-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def limiter(redis_conn: redis.Redis, keys: Keys) -> RateLimiter:
    return RateLimiter(redis_conn, keys, messages_per_minute=1000)


# -- learning from headers ----------------------------------------------------------------------------
def test_unknown_bucket_lets_one_request_learn_it(limiter: RateLimiter) -> None:
    assert limiter.reserve("main", now=T0) == 0
    # The probe is in flight: nobody else goes until its answer taught the bucket.
    assert 0 < limiter.reserve("main", now=T0 + 0.01) <= 0.05
    limiter.update("main", headers(3, 2, 1.0, "hash-1"), now=T0 + 0.05)
    state = limiter.state("main")
    assert state["limit"] == "3" and state["remaining"] == "2" and state["bucket"] == "hash-1"
    assert float(state["reset_at"]) == pytest.approx(T0 + 1.05)
    assert "probe_until" not in state


def test_reserve_blocks_when_remaining_is_zero_until_reset(limiter: RateLimiter) -> None:
    limiter.update("main", headers(3, 2, 1.0), now=T0)
    assert limiter.reserve("main", now=T0 + 0.1) == 0
    assert limiter.reserve("main", now=T0 + 0.2) == 0
    wait = limiter.reserve("main", now=T0 + 0.3)
    assert wait == pytest.approx(0.7, abs=1e-3)
    assert limiter.reserve("main", now=T0 + 0.99) == pytest.approx(0.01, abs=1e-3)
    # The window is over: the full bucket is available again, and not more.
    assert [limiter.reserve("main", now=T0 + 1.0 + i / 100) for i in range(3)] == [0, 0, 0]
    assert limiter.reserve("main", now=T0 + 1.05) > 0


def test_update_keeps_the_lower_remaining_of_one_window(limiter: RateLimiter) -> None:
    limiter.update("main", headers(5, 1, 1.0), now=T0)
    # A late answer from earlier in the same window must not hand out slots again.
    limiter.update("main", headers(5, 3, 0.8), now=T0 + 0.2)
    assert limiter.state("main")["remaining"] == "1"
    # A later window starts fresh.
    limiter.update("main", headers(5, 4, 1.0), now=T0 + 1.5)
    assert limiter.state("main")["remaining"] == "4"


def test_answers_without_headers_end_the_probe(limiter: RateLimiter) -> None:
    assert limiter.reserve("main", now=T0) == 0
    limiter.update("main", RateLimitHeaders(), now=T0 + 0.1)
    assert limiter.reserve("main", now=T0 + 0.2) == 0


def test_cancel_gives_the_slot_back(limiter: RateLimiter) -> None:
    limiter.update("main", headers(2, 1, 5.0), now=T0)
    assert limiter.reserve("main", now=T0 + 0.1) == 0
    assert limiter.reserve("main", now=T0 + 0.2) > 0
    limiter.cancel("main")  # the last successful reservation was not used
    assert limiter.reserve("main", now=T0 + 0.3) == 0
    assert limiter.state("main")["remaining"] == "0"
    assert limiter.reserve("main", now=T0 + 0.4) > 0


def test_webhooks_have_separate_buckets(limiter: RateLimiter) -> None:
    limiter.update("main", headers(1, 0, 2.0), now=T0)
    assert limiter.reserve("main", now=T0 + 0.1) > 0
    assert limiter.reserve("health", now=T0 + 0.1) == 0


def test_reservations_are_atomic_across_threads(redis_url: str, make_settings: Callable[..., Settings],
                                                keys: Keys) -> None:
    conns = [connect(make_settings(redis_url=redis_url)) for _ in range(8)]
    RateLimiter(conns[0], keys, 1000).update("main", headers(5, 5, 30.0), now=T0)
    results: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(len(conns))

    def grab(conn: redis.Redis) -> None:
        limiter = RateLimiter(conn, keys, 1000)
        start.wait()
        for _ in range(5):
            wait = limiter.reserve("main", now=T0 + 1)
            with lock:
                results.append(wait)

    threads = [threading.Thread(target=grab, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for conn in conns:
        conn.close()
    assert results.count(0.0) == 5
    assert len(results) == 40


# -- per-minute window ------------------------------------------------------------------------------
def test_per_minute_window(redis_conn: redis.Redis, keys: Keys) -> None:
    limiter = RateLimiter(redis_conn, keys, messages_per_minute=3, window_seconds=60.0)
    limiter.update("main", headers(100, 100, 1.0), now=T0)
    assert [limiter.reserve("main", now=T0 + i) for i in range(3)] == [0, 0, 0]
    # The bucket would allow more; the channel would not (Discord does not announce it).
    assert limiter.reserve("main", now=T0 + 10) == pytest.approx(50.0)
    assert limiter.reserve("main", now=T0 + 59.5) == pytest.approx(0.5)
    assert limiter.reserve("main", now=T0 + 60.01) == 0
    assert limiter.reserve("main", now=T0 + 60.5) > 0
    assert limiter.reserve("health", now=T0 + 60.5) == 0


def test_default_window_has_a_margin(redis_conn: redis.Redis, keys: Keys) -> None:
    limiter = RateLimiter(redis_conn, keys, messages_per_minute=1)
    limiter.update("main", headers(100, 100, 1.0), now=T0)
    assert limiter.reserve("main", now=T0) == 0
    assert limiter.reserve("main", now=T0 + 60) > 0


# -- blocks after a 429 -----------------------------------------------------------------------------
def test_global_block_stops_every_webhook(limiter: RateLimiter) -> None:
    limiter.update("main", headers(5, 5, 1.0), now=T0)
    limiter.block(None, 5.0, is_global=True, now=T0)
    assert limiter.reserve("main", now=T0 + 1) == pytest.approx(4.0)
    assert limiter.reserve("health", now=T0 + 1) == pytest.approx(4.0)
    assert limiter.reserve("main", now=T0 + 5.01) == 0
    assert limiter.reserve("health", now=T0 + 5.01) == 0


def test_webhook_block_stops_only_that_webhook(limiter: RateLimiter) -> None:
    limiter.update("main", headers(5, 5, 1.0), now=T0)
    limiter.block("main", 2.0, now=T0)
    assert limiter.reserve("main", now=T0 + 1) == pytest.approx(1.0)
    assert limiter.reserve("health", now=T0 + 1) == 0
    assert limiter.reserve("main", now=T0 + 2.01) == 0


def test_acquire_waits_and_honours_stop(limiter: RateLimiter) -> None:
    limiter.block("main", 30.0)
    stop = threading.Event()
    stop.set()
    assert limiter.acquire("main", stop=stop) is False
    assert limiter.acquire("health", stop=stop) is True


# -- an answer learnt with the next reservation; the window counted only when it may be full -------------------
def test_an_answer_is_learnt_with_the_next_reservation_in_one_script_run(limiter: RateLimiter, redis_url: str) -> None:
    limiter.update("main", headers(5, 5, 1.0), now=T0)
    assert limiter.reserve("main", now=T0 + 0.1) == 0
    limiter.answered("main", headers(5, 0, 1.0), now=T0 + 0.2)  # kept for the next reservation
    assert limiter.state("main")["remaining"] == "4"
    with CommandCounter(redis_url) as counter:
        wait = limiter.reserve("main", now=T0 + 0.3)
        commands = counter.stop()
    assert wait == pytest.approx(0.9, abs=1e-3)  # Discord said none remain until T0 + 1.2
    assert limiter.state("main")["remaining"] == "0"
    assert commands["EVALSHA"] == 1 and sum(commands.values()) <= 5, commands
    limiter.answered("main", headers(5, 4, 1.0), now=T0 + 1.5)
    limiter.flush("main")  # learnt at once (before the lock goes)
    assert limiter.state("main")["remaining"] == "4"
    limiter.flush("main")  # nothing left to learn: no command
    with CommandCounter(redis_url) as counter:
        assert limiter.reserve("main", now=T0 + 1.6) == 0
        commands = counter.stop()
    # The script, the global block, the bucket read and write, the window's new member.
    assert sum(commands.values()) == 5, commands


def test_the_answer_to_a_probe_is_learnt_at_once(limiter: RateLimiter) -> None:
    """Until it is learnt nobody may send to the webhook: it must not wait for a next reservation that a process
    killed meanwhile would never make."""
    assert limiter.reserve("main", now=T0) == 0  # the bucket is unknown: this request learns it
    limiter.answered("main", headers(5, 4, 1.0), now=T0 + 0.1)
    state = limiter.state("main")
    assert "probe_until" not in state and state["remaining"] == "4"
    assert limiter.reserve("main", now=T0 + 0.2) == 0
    limiter.answered("main", headers(5, 2, 1.0), now=T0 + 0.3)  # an ordinary answer waits for the next one
    assert limiter.state("main")["remaining"] == "3"  # the reservation's own count, until then
    limiter.flush("main")
    assert limiter.state("main")["remaining"] == "2"


def test_the_per_minute_window_is_exact_though_counted_only_when_it_may_be_full(redis_conn: redis.Redis,
                                                                                keys: Keys) -> None:
    """Random requests (some given back) against a plain sliding window: the same answer every time."""
    rng = random.Random(7)
    per_minute, window = 5, 10.0
    limiter = RateLimiter(redis_conn, keys, messages_per_minute=per_minute, window_seconds=window)
    limiter.update("main", headers(1000, 1000, 10_000.0), now=T0)  # the bucket out of the way
    taken: list[float] = []
    now = T0
    for _ in range(400):
        now += rng.choice([0.01, 0.3, 1.0, 2.5, 6.0])
        inside = sorted(t for t in taken if t > now - window)
        expected = 0.0 if len(inside) < per_minute else inside[0] + window - now
        assert limiter.reserve("main", now=now) == pytest.approx(expected, abs=1e-6)
        if expected == 0:
            taken.append(now)
            if rng.random() < 0.1:  # claimed nothing after all: the slot is given back
                limiter.cancel("main")
                taken.pop()
