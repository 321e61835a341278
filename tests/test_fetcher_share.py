"""Two fetchers share the work through Redis (fetcher/share.py, fetcher/peers.py): each predictor and each match
polled by one of them per cycle, one leaderboard refresh, a dead fetcher's share taken within a cycle, and a
block met by one stopping both. In one process against the fake Sofascore; the hosts' own test is issue 12's."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from fetcher import peers, share
from fetcher.client import SofascoreClient
from fetcher.cycle import Fetcher
from shared import watch
from shared.keys import Keys
from shared.settings import Settings
from tests.fakes.sofascore import REF_NOW, FakeSofascore, load_fixture
from tests.test_fetcher import Clock

A, B = "fetcher:host-a:1001", "fetcher:host-b:1001"
EVENTS = range(16_100_000, 16_100_030)


def upcoming(tip_id: str, event_id: int) -> dict[str, Any]:
    template = load_fixture("user-6a1f0c2e9b3d4e5f60718293-page0.json")["predictions"][0]
    return {**template, "id": tip_id, "eventId": event_id, "startDateTimestamp": int(REF_NOW) + 86_400}


@pytest.fixture
def fake() -> Iterator[FakeSofascore]:
    with FakeSofascore(clock=lambda: REF_NOW) as server:
        for n, entry in enumerate(server.ranking):
            server.set_feed(entry["id"], [upcoming(f"t{n}", 16_000_000 + n)])
        for event in EVENTS:
            server.add_event_odds(event, load_fixture("event-15981204-odds-all.json"))
        yield server


@pytest.fixture
def pair(make_settings: Callable[..., Settings], fake: FakeSofascore,
         redis_conn: redis.Redis) -> Iterator[tuple[Settings, Clock, Fetcher, Fetcher]]:
    settings = make_settings(sofascore_base_url=fake.base_url)
    clock = Clock(REF_NOW)
    clients = [SofascoreClient(settings), SofascoreClient(settings)]
    a, b = (Fetcher(settings, redis_conn, client, clock=clock, name=name) for client, name in zip(clients, (A, B)))
    for fetcher in (a, b):
        fetcher.load_state()
    watch.add(redis_conn, Keys.of(settings), {event: REF_NOW + 86_400 for event in EVENTS})
    # B started first: A finds it at its first cycle.
    peers.alive(redis_conn, Keys.of(settings), B, clock(), a.live_seconds)
    yield settings, clock, a, b
    for client in clients:
        client.close()


def waited(settings: Settings, clock: Clock, seconds: float, *alive: Fetcher, conn: redis.Redis) -> None:
    """Time passes; the fetchers still running say so every minute as they wait (fetcher/main.py)."""
    clock.advance(seconds)
    for fetcher in alive:
        peers.alive(conn, Keys.of(settings), fetcher.name or "", clock(), fetcher.live_seconds)


def page_requests(fake: FakeSofascore) -> dict[str, int]:
    return {entry["id"]: fake.hits(f"/user-account/{entry['id']}/predictions?page=0") for entry in fake.ranking[:9]}


def odds_requests(fake: FakeSofascore) -> list[int]:
    return [fake.hits(f"/event/{event}/odds/1/all") for event in EVENTS]


def test_two_fetchers_poll_each_predictor_and_match_once_per_cycle(
        pair: tuple[Settings, Clock, Fetcher, Fetcher], fake: FakeSofascore, redis_conn: redis.Redis) -> None:
    settings, clock, a, b = pair
    a.run_cycle()
    b.run_cycle()
    assert fake.hits("/user-account/vote-ranking") == 1  # A refreshed it; B took up A's selection
    assert page_requests(fake) == {pid: 1 for pid in page_requests(fake)}
    assert odds_requests(fake) == [1] * len(EVENTS)
    # Both did some of it.
    assert 0 < a.owned < 9 and a.owned + b.owned == 9

    waited(settings, clock, 300, a, b, conn=redis_conn)
    a.run_cycle()
    b.run_cycle()
    assert page_requests(fake) == {pid: 2 for pid in page_requests(fake)}
    assert fake.hits("/user-account/vote-ranking") == 1


def test_a_dead_fetchers_share_moves_within_a_cycle_and_a_block_stops_both(
        pair: tuple[Settings, Clock, Fetcher, Fetcher], fake: FakeSofascore, redis_conn: redis.Redis) -> None:
    settings, clock, a, b = pair
    a.run_cycle()
    b.run_cycle()
    # B dies (no cycle, no beat): after the heartbeat timeout, A's next cycle polls everyone.
    waited(settings, clock, a.live_seconds + 1, a, conn=redis_conn)
    a.run_cycle()
    assert page_requests(fake) == {pid: 2 for pid in page_requests(fake)} and a.owned == 9

    # B comes back and meets a challenge page: A, whose cycle comes next, makes no request at all.
    waited(settings, clock, 300, a, conn=redis_conn)
    b.run_cycle()  # B joins
    fake.set_mode("challenge", "/user-account/")
    waited(settings, clock, 300, a, b, conn=redis_conn)
    b.run_cycle()
    assert b.state.upstream.is_blocked(clock())
    before = len(fake.requests)
    report = a.run_cycle()
    assert report.skipped_blocked and len(fake.requests) == before


def test_the_share_is_the_same_for_everyone_and_moves_only_what_it_must() -> None:
    items = [f"p{n}" for n in range(1000)]
    two = {item: share.owner(item, [A, B]) for item in items}
    assert 400 < sum(1 for owner in two.values() if owner == A) < 600
    three = {item: share.owner(item, [A, B, "fetcher:host-c:7"]) for item in items}
    moved = [item for item in items if three[item] != two[item]]
    assert all(three[item] == "fetcher:host-c:7" for item in moved) and 250 < len(moved) < 420
    assert share.mine(items, A, [A], str) == items and share.mine(items, "once", [A, B], str) == items


def test_the_request_budget_holds_for_both_fetchers_together(make_settings: Callable[..., Settings],
                                                             redis_conn: redis.Redis) -> None:
    clock = Clock(REF_NOW)
    users = [f"user{i:02d}" for i in range(24)]
    with FakeSofascore(clock=clock) as fake:
        fake.ranking = []
        for uid in users:
            fake.set_feed(uid, [])
        settings = make_settings(sofascore_base_url=fake.base_url, target_users=users,
                                 upstream_max_requests_per_minute=10)
        clients = [SofascoreClient(settings), SofascoreClient(settings)]
        try:
            a, b = (Fetcher(settings, redis_conn, client, clock=clock, name=name)
                    for client, name in zip(clients, (A, B)))
            peers.alive(redis_conn, Keys.of(settings), B, clock(), a.live_seconds)
            for fetcher in (a, b):
                # Waiting for the budget moves the test's clock; both fetchers' heartbeats go on meanwhile.
                fetcher.sleep = lambda seconds: waited(settings, clock, seconds, a, b, conn=redis_conn)
            a.run_cycle()
            b.run_cycle()  # finds A's last minute in the shared window: waits for it
        finally:
            for client in clients:
                client.close()
    starts = sorted(r.at for r in fake.requests)
    pages = sorted(r.path for r in fake.requests if "/predictions" in r.path)
    assert pages == sorted(f"/api/v1/user-account/{u}/predictions?page=0" for u in users)  # each once, by one
    assert max(sum(1 for t in starts if start <= t < start + 60) for start in starts) <= 10
