"""The fetcher against a local fake Sofascore and a real Redis (db 15, a key prefix per test), with each HTTP client."""
from __future__ import annotations

import base64
import functools
import gzip
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
import redis

from fetcher import streams, usage
from fetcher.client import FetchResult, SofascoreClient, classify, classify_exception
from fetcher.cycle import Fetcher
from fetcher.main import run
from fetcher.transport import Answer, TransportFailure, backend
from processor.main import Processor
from shared.keys import Keys
from shared.models import FetchRecord
from shared.redisconn import connect
from shared.settings import Settings
from shared.storage import Database
from tests.fakes.httpproxy import HttpProxy
from tests.fakes.sofascore import REF_NOW, FakeSofascore, load_fixture

GOAL_GURU = "6a1f0c2e9b3d4e5f60718293"
TACTICO = "5e8d7c6b5a4f3e2d1c0b9a87"
VALUE_HUNTER = "64b2a9d1c3e5f70819a2b3c4"
WITH_PAGES = {GOAL_GURU, TACTICO, VALUE_HUNTER}
CHROME_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/146.0.0.0 Safari/537.36")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """`run()` installs its own stderr handler on the root logger; put pytest's set-up back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def make_settings(make_settings: Callable[..., Settings], http_client: str) -> Callable[..., Settings]:
    """conftest's factory with an HTTP client: every test here (and in the modules that take this) runs with each."""
    return functools.partial(make_settings, http_client=http_client)


@pytest.fixture
def fake() -> Iterator[FakeSofascore]:
    # A fixed clock on the fake: fixture timestamps are served unshifted, so payloads are reproducible.
    with FakeSofascore(clock=lambda: REF_NOW) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock(REF_NOW)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], fake: FakeSofascore) -> Settings:
    return make_settings(sofascore_base_url=fake.base_url)


@pytest.fixture
def open_fetcher(redis_conn: redis.Redis, clock: Clock) -> Iterator[Callable[..., Fetcher]]:
    """Builds Fetchers (each with its own client, like a restarted process) that load the stored state."""
    clients: list[SofascoreClient] = []

    def build(settings: Settings, conn: redis.Redis | None = None, load: bool = True) -> Fetcher:
        client = SofascoreClient(settings)
        clients.append(client)
        fetcher = Fetcher(settings, conn or redis_conn, client, clock=clock)
        if load:
            fetcher.load_state()
        return fetcher

    yield build
    for client in clients:
        client.close()


def ranked_ids(fake: FakeSofascore, n: int = 9) -> list[str]:
    return [entry["id"] for entry in fake.ranking[:n]]


def pages_only(fake: FakeSofascore) -> None:
    """Monitored users without prediction pages answer 404 (as real users that went private do)."""
    for uid in ranked_ids(fake):
        if uid not in WITH_PAGES:
            fake.set_mode("notfound", f"/user-account/{uid}/")


def records(conn: redis.Redis, settings: Settings) -> list[FetchRecord]:
    return [FetchRecord.from_fields(fields) for _, fields in conn.xrange(Keys.of(settings).fetched)]


def of_kind(conn: redis.Redis, settings: Settings, kind: str) -> list[FetchRecord]:
    return [r for r in records(conn, settings) if r.kind == kind]


def state(conn: redis.Redis, settings: Settings) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in conn.hgetall(Keys.of(settings).fetcher_state).items()}


def predictor(conn: redis.Redis, settings: Settings, pid: str) -> dict[str, Any]:
    raw = conn.hget(Keys.of(settings).monitored, pid)
    assert raw is not None, f"{pid} is not in the monitored hash"
    return json.loads(raw)


def served(fake: FakeSofascore, path: str) -> str:
    """What the fake answers on `path`, fetched independently (its clock is fixed, so it answers the same)."""
    with urllib.request.urlopen(fake.base_url + path, timeout=5) as response:
        return response.read().decode("utf-8")


def polls(fake: FakeSofascore, uid: str) -> int:
    """How many times a predictor was polled: requests for its page 0 (a poll may read deeper pages too)."""
    return fake.hits(f"/user-account/{uid}/predictions?page=0")


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and text in r.getMessage()]


# -- a full cycle through run(once=True) ------------------------------------------------------------


def test_once_writes_leaderboard_predictions_and_odds_exactly_as_received(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis
) -> None:
    pages_only(fake)
    keys = Keys.of(settings)
    redis_conn.zadd(keys.watched_events, {
        "15981204": REF_NOW + 86400,
        "15981377": REF_NOW + 3600,
        "15976650": REF_NOW - 1500,  # kicked off 25 min ago: dropped, not polled
    })

    assert run(settings, once=True, clock=lambda: REF_NOW) == 0

    written = records(redis_conn, settings)
    assert [r.kind for r in written].count("leaderboard") == 1
    assert written[0].kind == "leaderboard" and written[0].subject == "top"
    predictions = {(r.subject, r.page): r for r in written if r.kind == "predictions"}
    # GoalGuru's page 0 says there is a next page and brings upcoming tips never seen: page 1 is read
    # too (finished tips only: nothing new, so no page 2). The others' pages omit hasNextPage.
    assert set(predictions) == {(uid, 0) for uid in WITH_PAGES} | {(GOAL_GURU, 1)}
    odds = {r.subject: r for r in written if r.kind == "odds"}
    assert set(odds) == {"15981204", "15981377"}
    assert len(written) == 1 + 4 + 2
    assert all(r.fetched_at == REF_NOW for r in written)

    # Raw text, not re-serialised JSON (the fake answers compact JSON, json.dumps would add spaces).
    assert written[0].payload == served(fake, "/user-account/vote-ranking")
    for (uid, page), record in predictions.items():
        assert record.payload == served(fake, f"/user-account/{uid}/predictions?page={page}")
    for eid, record in odds.items():
        assert record.payload == served(fake, f"/event/{eid}/odds/1/all")

    assert fake.count("/event/15976650/") == 0
    assert redis_conn.zrange(keys.watched_events, 0, -1) == [b"15981377", b"15981204"]

    # Nine predictors pass the default filters; the six without pages got a 404 and a 30 min pause.
    stored = state(redis_conn, settings)
    assert json.loads(stored["monitored"]) == ranked_ids(fake)
    assert float(stored["leaderboard_at"]) == REF_NOW and float(stored["last_cycle_at"]) == REF_NOW
    assert float(stored["last_success_at"]) == REF_NOW
    assert stored["backoff_until"] == "" and stored["blocked_since"] == ""
    for uid in ranked_ids(fake):
        info = predictor(redis_conn, settings, uid)
        if uid in WITH_PAGES:
            assert (info["last_status"], info["last_fetch"], info["paused_until"]) == ("ok", REF_NOW, None)
        else:
            assert (info["last_status"], info["paused_until"]) == ("not_found", REF_NOW + 1800)
    assert predictor(redis_conn, settings, GOAL_GURU)["nickname"] == "GoalGuru_88"

    beats = [json.loads(redis_conn.get(k)) for k in redis_conn.scan_iter(match=keys.heartbeats)]
    assert len(beats) == 1 and beats[0]["last_cycle_at"] == REF_NOW


def test_requests_carry_chrome_headers(fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis) -> None:
    redis_conn.zadd(Keys.of(settings).watched_events, {"15981204": REF_NOW + 60})
    assert run(settings, once=True, clock=lambda: REF_NOW) == 0
    assert fake.count("/user-account/vote-ranking") == 1 and fake.count("/event/") == 1
    assert len(fake.requests) == 12  # GoalGuru's page 1 too (see above)
    for request in fake.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["user-agent"] == CHROME_UA
        assert headers["referer"] == "https://www.sofascore.com/"
        assert headers["x-requested-with"] == "XMLHttpRequest"
        assert headers["accept"] == "application/json, text/plain, */*"
        assert headers["accept-language"] == "en-GB,en;q=0.9"
        assert headers["accept-encoding"] == "gzip, deflate, br"
        assert (headers["sec-fetch-mode"], headers["sec-fetch-site"]) == ("cors", "same-origin")
        assert "origin" not in headers
        assert "upgrade-insecure-requests" not in headers  # a page load's, not an XHR's
    assert sorted(r.path.rsplit("?", 1)[1] for r in fake.requests if "/predictions" in r.path) == (
        ["page=0"] * 9 + ["page=1"])


def test_the_user_agent_is_the_chosen_profile_s_chrome(fake: FakeSofascore, make_settings: Callable[..., Settings],
                                                        http_client: str) -> None:
    profile = {"tls-client": "chrome_131", "curl_cffi": "chrome131"}[http_client]
    settings = make_settings(sofascore_base_url=fake.base_url, http_client=http_client, http_impersonate=profile)
    with SofascoreClient(settings) as client:
        assert client.get("/user-account/vote-ranking").ok
    [request] = fake.requests
    assert {k.lower(): v for k, v in request.headers.items()}["user-agent"] == CHROME_UA.replace("146", "131")


def test_once_exits_1_when_redis_is_unreachable(
    fake: FakeSofascore, make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(sofascore_base_url=fake.base_url, redis_url="redis://127.0.0.1:1/0")
    assert run(settings, once=True) == 1
    assert fake.requests == []  # nothing fetched that could not be written
    err = capsys.readouterr().err
    assert "Redis unreachable" in err and "Traceback" not in err


# -- upstream blocks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["challenge", "html200"])
def test_challenge_on_the_leaderboard_stops_every_request(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, open_fetcher: Callable[..., Fetcher],
    mode: str,
) -> None:
    fake.set_mode(mode, "/user-account/vote-ranking")
    redis_conn.zadd(Keys.of(settings).watched_events, {"15981204": REF_NOW + 60})
    fetcher = open_fetcher(settings.model_copy(update={"target_users": [GOAL_GURU]}))
    report = fetcher.run_cycle()
    assert report.halted
    assert len(fake.requests) == 1  # not even the target user or the watched event
    assert [r.subject for r in of_kind(redis_conn, settings, "health")] == ["upstream_blocked"]
    assert of_kind(redis_conn, settings, "leaderboard") == []
    stored = state(redis_conn, settings)
    assert stored["last_cycle_at"] != "" and stored["last_success_at"] == ""  # status can tell it is failing


def test_challenge_mid_cycle_pauses_everything_until_the_backoff_ends(
    fake: FakeSofascore, make_settings: Callable[..., Settings], redis_conn: redis.Redis,
    open_fetcher: Callable[..., Fetcher], clock: Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    # One request at a time, so "no further requests" is exact.
    settings = make_settings(sofascore_base_url=fake.base_url, http_concurrency=1)
    fake.set_mode("challenge", f"/user-account/{GOAL_GURU}/", count=1)
    redis_conn.zadd(Keys.of(settings).watched_events, {"15981204": REF_NOW + 86400})
    caplog.set_level(logging.INFO)

    fetcher = open_fetcher(settings)
    fetcher.run_cycle()
    assert [r.path.split("?")[0] for r in fake.requests] == [
        "/api/v1/user-account/vote-ranking", f"/api/v1/user-account/{GOAL_GURU}/predictions"]
    lines = warnings_about(caplog, "GoalGuru_88")
    assert [r.getMessage() for r in lines] == [
        "predictions for GoalGuru_88 (6a1f…): challenge page (HTTP 403); upstream paused 60 s"]
    assert lines[0].exc_info is None

    stored = state(redis_conn, settings)
    assert float(stored["backoff_until"]) == REF_NOW + 60
    assert float(stored["backoff_seconds"]) == 60 and float(stored["blocked_since"]) == REF_NOW
    health = of_kind(redis_conn, settings, "health")
    assert [h.subject for h in health] == ["upstream_blocked"]
    body = health[0].json_payload()
    assert body["until"] == REF_NOW + 60 and "blocking" in body["message"]
    assert predictor(redis_conn, settings, GOAL_GURU)["strikes"] == 0  # not the predictor's fault
    assert fetcher.next_delay(random.Random(1)) == pytest.approx(60)

    # A restart inside the backoff remembers it and sends nothing.
    clock.advance(30)
    restarted = open_fetcher(settings)
    report = restarted.run_cycle()
    assert report.skipped_blocked and len(fake.requests) == 2

    # After the backoff the cycle runs again; the block ends after 30 min without another, announced once.
    clock.advance(31)
    restarted.run_cycle()
    assert polls(fake, GOAL_GURU) == 2
    assert fake.count("/event/15981204/") == 1
    assert fake.count("/user-account/vote-ranking") == 1  # the leaderboard is not due for 30 min
    assert [h.subject for h in of_kind(redis_conn, settings, "health")] == ["upstream_blocked"]
    clock.advance(1800)
    restarted.run_cycle()
    assert [h.subject for h in of_kind(redis_conn, settings, "health")] == ["upstream_blocked", "upstream_recovered"]
    recovered = of_kind(redis_conn, settings, "health")[1]
    assert recovered.fetched_at == REF_NOW + 61 + 1800
    stored = state(redis_conn, settings)
    assert stored["backoff_until"] == "" and stored["blocked_since"] == ""
    assert {r.subject for r in of_kind(redis_conn, settings, "predictions")} == set(ranked_ids(fake))


def test_consecutive_challenges_double_the_backoff_and_alert_once(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, open_fetcher: Callable[..., Fetcher],
    clock: Clock,
) -> None:
    fake.set_mode("challenge", "/user-account/vote-ranking")
    fetcher = open_fetcher(settings)
    fetcher.run_cycle()
    clock.advance(60)
    fetcher.run_cycle()
    assert float(state(redis_conn, settings)["backoff_until"]) == REF_NOW + 60 + 120
    clock.advance(120)
    fetcher.run_cycle()
    assert float(state(redis_conn, settings)["backoff_until"]) == REF_NOW + 180 + 240
    assert fake.count() == 3
    assert [h.subject for h in of_kind(redis_conn, settings, "health")] == ["upstream_blocked"]


def test_429_honours_a_longer_retry_after(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, open_fetcher: Callable[..., Fetcher],
    clock: Clock,
) -> None:
    fake.set_mode("ratelimit", "/user-account/vote-ranking", count=1, retry_after=120)
    fetcher = open_fetcher(settings)
    fetcher.run_cycle()
    assert len(fake.requests) == 1
    assert float(state(redis_conn, settings)["backoff_until"]) - REF_NOW >= 120
    clock.advance(90)  # past the 60 s ladder step, still inside Retry-After
    assert fetcher.run_cycle().skipped_blocked and len(fake.requests) == 1
    assert fetcher.next_delay(random.Random(1)) == pytest.approx(30)
    clock.advance(30)
    fetcher.run_cycle()
    assert of_kind(redis_conn, settings, "leaderboard") != []
    assert [h.subject for h in of_kind(redis_conn, settings, "health")] == ["upstream_blocked"]
    clock.advance(1800)  # 30 min without another 429 after the wait: the block is over
    fetcher.run_cycle()
    assert [h.subject for h in of_kind(redis_conn, settings, "health")] == ["upstream_blocked", "upstream_recovered"]


# -- per-predictor failures ---------------------------------------------------------------------------


def test_404_pauses_only_that_predictor_for_30_minutes(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, open_fetcher: Callable[..., Fetcher],
    clock: Clock,
) -> None:
    fake.set_mode("notfound", f"/user-account/{GOAL_GURU}/", count=1)
    fetcher = open_fetcher(settings)
    fetcher.run_cycle()
    assert predictor(redis_conn, settings, GOAL_GURU)["paused_until"] == REF_NOW + 1800
    subjects = {r.subject for r in of_kind(redis_conn, settings, "predictions")}
    assert GOAL_GURU not in subjects and {TACTICO, VALUE_HUNTER} <= subjects
    assert state(redis_conn, settings)["backoff_until"] == ""

    clock.advance(300)
    fetcher.run_cycle()
    assert polls(fake, GOAL_GURU) == 1
    assert fake.count(f"/user-account/{TACTICO}/") == 2

    clock.advance(1500)  # 30 min after the 404
    fetcher.run_cycle()
    assert polls(fake, GOAL_GURU) == 2
    assert GOAL_GURU in {r.subject for r in of_kind(redis_conn, settings, "predictions")}
    assert predictor(redis_conn, settings, GOAL_GURU)["paused_until"] is None


def test_three_server_errors_in_a_row_pause_a_predictor(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, open_fetcher: Callable[..., Fetcher],
    clock: Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    fake.set_mode("error", f"/user-account/{TACTICO}/")
    fetcher = open_fetcher(settings)
    for cycle in range(3):
        fetcher.run_cycle()
        info = predictor(redis_conn, settings, TACTICO)
        if cycle < 2:
            assert info["strikes"] == cycle + 1 and info["paused_until"] is None
        clock.advance(300)
    assert info["paused_until"] == REF_NOW + 600 + 1800
    assert warnings_about(caplog, "Tactico.ES")[-1].getMessage() == (
        "predictions for Tactico.ES (5e8d…): HTTP 500; 3 failures in a row; predictor paused 30 min")
    fetcher.run_cycle()
    assert fake.count(f"/user-account/{TACTICO}/") == 3
    assert polls(fake, GOAL_GURU) == 4  # the others are unaffected
    assert state(redis_conn, settings)["backoff_until"] == ""  # a 500 is no reason to stop everything
    assert TACTICO not in {r.subject for r in of_kind(redis_conn, settings, "predictions")}


def test_malformed_json_logs_one_line_and_writes_nothing(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, open_fetcher: Callable[..., Fetcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake.set_mode("malformed", f"/user-account/{GOAL_GURU}/")
    open_fetcher(settings).run_cycle()
    lines = [r for r in caplog.records if GOAL_GURU[:4] in r.getMessage() and r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in lines] == [
        "predictions for GoalGuru_88 (6a1f…): invalid JSON (HTTP 200); failure 1/3"]
    assert lines[0].exc_info is None and "Traceback" not in caplog.text
    subjects = {r.subject for r in of_kind(redis_conn, settings, "predictions")}
    assert GOAL_GURU not in subjects and {TACTICO, VALUE_HUNTER} <= subjects
    assert predictor(redis_conn, settings, GOAL_GURU)["strikes"] == 1


def test_a_slow_answer_times_out_and_counts_as_a_failure(
    fake: FakeSofascore, make_settings: Callable[..., Settings], redis_conn: redis.Redis,
    open_fetcher: Callable[..., Fetcher], caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(sofascore_base_url=fake.base_url, http_timeout_seconds=0.3)
    fake.set_mode("slow", f"/user-account/{GOAL_GURU}/", delay=3)
    started = time.monotonic()
    open_fetcher(settings).run_cycle()
    assert time.monotonic() - started < 2.5  # it gave up instead of waiting 3 s
    assert [r.getMessage() for r in warnings_about(caplog, "GoalGuru_88")] == [
        "predictions for GoalGuru_88 (6a1f…): timeout; failure 1/3"]
    assert predictor(redis_conn, settings, GOAL_GURU)["strikes"] == 1
    assert GOAL_GURU not in {r.subject for r in of_kind(redis_conn, settings, "predictions")}


# -- who is polled --------------------------------------------------------------------------------------


def test_target_users_are_polled_even_off_the_leaderboard(
    fake: FakeSofascore, make_settings: Callable[..., Settings], redis_conn: redis.Redis,
    open_fetcher: Callable[..., Fetcher],
) -> None:
    outsider = "7777777777777777aaaaaaaa"
    fake.add_prediction(outsider, {"eventId": 1, "vote": "1"})
    settings = make_settings(sofascore_base_url=fake.base_url, top_predictors_limit=1, target_users=outsider)
    open_fetcher(settings).run_cycle()
    assert {r.subject for r in of_kind(redis_conn, settings, "predictions")} == {GOAL_GURU, outsider}
    assert predictor(redis_conn, settings, outsider)["nickname"] is None
    assert json.loads(state(redis_conn, settings)["monitored"]) == [GOAL_GURU, outsider]


def test_without_any_leaderboard_the_targets_are_still_polled(
    fake: FakeSofascore, make_settings: Callable[..., Settings], redis_conn: redis.Redis,
    open_fetcher: Callable[..., Fetcher], caplog: pytest.LogCaptureFixture,
) -> None:
    fake.set_mode("error", "/user-account/vote-ranking")
    settings = make_settings(sofascore_base_url=fake.base_url, target_users=f"{TACTICO}")
    open_fetcher(settings).run_cycle()
    assert [r.subject for r in records(redis_conn, settings)] == [TACTICO]
    assert [r.getMessage() for r in warnings_about(caplog, "leaderboard")] == [
        "leaderboard: HTTP 500; polling TARGET_USERS only"]


def test_a_failed_refresh_keeps_the_previous_list(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, open_fetcher: Callable[..., Fetcher],
    clock: Clock,
) -> None:
    fetcher = open_fetcher(settings)
    fetcher.run_cycle()
    clock.advance(31 * 60)
    fake.set_mode("error", "/user-account/vote-ranking")
    fetcher.run_cycle()
    assert fake.count("/user-account/vote-ranking") == 2
    assert polls(fake, GOAL_GURU) == 2
    assert json.loads(state(redis_conn, settings)["monitored"]) == ranked_ids(fake)
    assert float(state(redis_conn, settings)["leaderboard_at"]) == REF_NOW  # retried next cycle


def test_a_leaderboard_of_unexpected_shape_keeps_the_previous_list(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, open_fetcher: Callable[..., Fetcher],
    clock: Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    expected = ranked_ids(fake)
    fetcher = open_fetcher(settings)
    fetcher.run_cycle()
    clock.advance(31 * 60)
    with fake.lock:
        fake.ranking = [{"nickname": "no id, no stats"}]
    fetcher.run_cycle()
    messages = [r.getMessage() for r in warnings_about(caplog, "leaderboard")]
    assert messages[0].startswith("leaderboard: 1 malformed entry left out (first: ranking[0].id")
    assert messages[1:] == ["leaderboard: no usable entries; keeping the previous 9 predictor(s)"]
    assert polls(fake, GOAL_GURU) == 2
    assert json.loads(state(redis_conn, settings)["monitored"]) == expected


# -- Redis trouble ----------------------------------------------------------------------------------------


def test_redis_going_away_keeps_state_in_memory_until_it_returns(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, open_fetcher: Callable[..., Fetcher],
    clock: Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    gone = connect(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    fetcher = open_fetcher(settings, conn=gone, load=False)
    fetcher.run_cycle()
    assert len([r for r in caplog.records if "Redis unavailable" in r.getMessage()]) == 1
    assert fetcher.pending == 1 + 9  # leaderboard + nine prediction pages, nothing lost
    assert "Traceback" not in caplog.text

    fetcher.conn = redis_conn  # Redis is back
    clock.advance(300)
    fetcher.run_cycle()
    assert fetcher.pending == 0
    written = records(redis_conn, settings)
    assert [r.kind for r in written].count("leaderboard") == 1
    assert len(of_kind(redis_conn, settings, "predictions")) == 18
    assert written[0].fetched_at == REF_NOW and written[-1].fetched_at == REF_NOW + 300
    assert float(state(redis_conn, settings)["leaderboard_at"]) == REF_NOW


def test_stream_is_trimmed_by_age_not_length(settings: Settings, redis_conn: redis.Redis) -> None:
    keys = Keys.of(settings)
    now = time.time()
    old_ms = int((now - 10 * 86400) * 1000)
    for i in range(250):
        redis_conn.xadd(keys.fetched, {"n": i}, id=f"{old_ms + i}-0")
    recent_ms = int((now - 86400) * 1000)
    for i in range(5):
        redis_conn.xadd(keys.fetched, {"recent": i}, id=f"{recent_ms + i}-0")
    record = FetchRecord(kind="leaderboard", subject="top", fetched_at=now, payload="{}")
    entry_id = streams.append(redis_conn, keys, record, settings.stream_retention_days)
    remaining = redis_conn.xrange(keys.fetched)
    assert len(remaining) < 255 - 100  # whole old nodes dropped (approximate trimming)
    assert [f for _, f in remaining if b"recent" in f] == [{b"recent": str(i).encode()} for i in range(5)]
    assert remaining[-1][0].decode() == entry_id
    assert streams.min_id(7, 1_000_000.0) == str((1_000_000 - 7 * 86400) * 1000)


# -- the client -----------------------------------------------------------------------------------------


def test_proxy_secret_never_reaches_the_log(
    fake: FakeSofascore, make_settings: Callable[..., Settings], open_fetcher: Callable[..., Fetcher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(sofascore_base_url=fake.base_url, proxy_url="http://scraper:hunter2secret@127.0.0.1:9")
    open_fetcher(settings).run_cycle()
    assert fake.requests == []  # everything went to the (dead) proxy
    assert [r.getMessage() for r in warnings_about(caplog, "leaderboard")] == [
        "leaderboard: connection error; nobody to poll yet"]
    assert "hunter2secret" not in caplog.text


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "reason"),
    [
        (200, {"Content-Type": "application/json"}, '{"a":1}', "ok", ""),
        (404, {"Content-Type": "application/json"}, '{"error":{}}', "not_found", "HTTP 404"),
        (403, {"Content-Type": "application/json"}, "{}", "challenge", "HTTP 403"),
        (200, {"Content-Type": "text/html"}, "<!DOCTYPE html><html>", "challenge", "HTML page (HTTP 200)"),
        (200, {}, "  <html>Just a moment...", "challenge", "HTML page (HTTP 200)"),
        (200, {"cf-mitigated": ["challenge"]}, "{}", "challenge", "HTTP 200"),
        (429, {"Retry-After": "120"}, "{}", "rate_limited", "HTTP 429"),
        (500, {}, "{}", "error", "HTTP 500"),
        (502, {"Content-Type": "text/html"}, "<html>Bad gateway</html>", "error", "HTTP 502"),
        (200, {"Content-Type": "application/json"}, '{"predictions": [', "error", "invalid JSON (HTTP 200)"),
        (200, {}, "", "error", "invalid JSON (HTTP 200)"),
        (400, {}, "{}", "error", "HTTP 400"),
    ],
)
def test_classify(status: int, headers: dict[str, Any], body: str, kind: str, reason: str) -> None:
    result = classify(status, headers, body, now=REF_NOW)
    assert (result.kind, result.reason) == (kind, reason)
    assert result.text == (body if kind == "ok" else "")


def test_retry_after_as_seconds_or_date() -> None:
    assert classify(429, {"retry-after": "120"}, "").retry_after == 120
    date = "Sun, 22 Nov 2026 12:05:00 GMT"  # REF_NOW + 5 min
    assert classify(429, {"Retry-After": date}, "", now=REF_NOW).retry_after == 300
    assert classify(429, {}, "").retry_after is None
    assert classify(429, {"Retry-After": "soon"}, "").retry_after is None


def test_exceptions_become_safe_reasons() -> None:
    secret = "http://scraper:hunter2secret@proxy.example:8080"
    assert classify_exception(TransportFailure("timeout")) == FetchResult("error", None, reason="timeout")
    assert classify_exception(TransportFailure("connection error")).reason == "connection error"
    assert classify_exception(RuntimeError(secret)) == FetchResult("error", None, reason="request failed (RuntimeError)")


def test_each_clients_failures_come_to_the_same_reasons() -> None:
    """What each library raises for a timeout or a refused connection (its message holding the proxy's password)
    comes to one of the same two reasons, whichever client is in use."""
    from curl_cffi.requests import exceptions as curl
    from tls_client.exceptions import TLSClientException

    from fetcher.transports import curlcffi, tlsclient

    secret = "http://scraper:hunter2secret@proxy.example:8080"
    go = 'failed to do request: Get "%s": ' % secret
    cases: list[tuple[Callable[[Any], str], BaseException, str]] = [
        (tlsclient.failure_reason, TLSClientException(go + "net/http: request canceled (Client.Timeout exceeded)"),
         "timeout"),
        (tlsclient.failure_reason, TLSClientException(go + "context deadline exceeded"), "timeout"),
        (tlsclient.failure_reason, TLSClientException(f"proxyconnect tcp {secret}: connection refused"),
         "connection error"),
        (curlcffi.failure_reason, curl.Timeout(f"curl: (28) Operation timed out via {secret}", 28), "timeout"),
        (curlcffi.failure_reason, curl.ConnectTimeout(f"curl: (28) Connection timed out via {secret}", 28),
         "timeout"),
        (curlcffi.failure_reason, curl.ConnectionError(f"curl: (7) Failed to connect via {secret}", 7),
         "connection error"),
        (curlcffi.failure_reason, curl.ProxyError(f"curl: (56) CONNECT refused by {secret}", 56), "connection error"),
    ]
    assert [reason_of(error) for reason_of, error, _ in cases] == [reason for *_, reason in cases]


def test_concurrency_is_capped_and_each_thread_has_its_own_transport(make_settings: Callable[..., Settings]) -> None:
    lock = threading.Lock()
    release = threading.Event()
    in_flight, peak = 0, 0
    full = threading.Event()
    transports: list[Any] = []

    class Transport:
        def __init__(self) -> None:
            self.threads: set[int] = set()

        def get(self, url: str) -> Answer:
            nonlocal in_flight, peak
            with lock:
                self.threads.add(threading.get_ident())
                in_flight += 1
                peak = max(peak, in_flight)
                if in_flight >= 3:
                    full.set()
            release.wait(5)
            with lock:
                in_flight -= 1
            return Answer(200, {}, "{}")

        def close(self) -> None:
            pass

    def factory(settings: Settings, cookies: CookieJar) -> Transport:
        transport = Transport()
        transports.append(transport)
        return transport

    settings = make_settings(http_concurrency=3)
    with SofascoreClient(settings, transport_factory=factory) as client:
        results: list[Any] = []
        consumer = threading.Thread(target=lambda: results.extend(client.fetch_many(["/x"] * 10, threading.Event())))
        consumer.start()
        assert full.wait(5)
        # Three requests are held open; a fourth would arrive now if the cap did not hold.
        assert not release.wait(0.2)
        assert peak == 3
        release.set()
        consumer.join(5)
    assert len(results) == 10 and all(r.ok for _, r in results)
    assert len(transports) == 3 and all(len(t.threads) == 1 for t in transports)


def sent_cookies(fake: FakeSofascore) -> list[str | None]:
    """The Cookie header of every request the fake received, in order."""
    return [{k.lower(): v for k, v in r.headers.items()}.get("cookie") for r in fake.requests]


def test_answers_do_not_pile_up_ahead_of_a_slow_caller(make_settings: Callable[..., Settings]) -> None:
    """A cycle asks thousands of paths at once; only a few are asked ahead of what the caller has taken,
    so a caller slower than the answers never holds thousands of payloads."""
    started: list[str] = []
    beyond_window = threading.Event()

    class Transport:
        def get(self, url: str) -> Answer:
            started.append(url)
            if len(started) > 4:
                beyond_window.set()
            return Answer(200, {}, "{}")

        def close(self) -> None:
            pass

    settings = make_settings(http_concurrency=2)  # a window of twice the concurrency: 4
    paths = [f"/x?n={n}" for n in range(100)]
    with SofascoreClient(settings, transport_factory=lambda s, c: Transport()) as client:
        answers = client.fetch_many(paths, threading.Event())
        first = next(answers)
        # The caller holds the first answer and takes no other: nothing beyond the window is asked.
        assert not beyond_window.wait(0.3)
        assert len(started) == 4
        rest = list(answers)
    assert sorted(index for index, _ in [first, *rest]) == list(range(100))
    assert all(result.ok for _, result in [first, *rest])


def test_a_cookie_set_on_one_answer_is_sent_by_every_worker_thread(
    fake: FakeSofascore, make_settings: Callable[..., Settings],
) -> None:
    """Like a browser: the `__cf_bm` Cloudflare sets on one answer goes out on every later request, whichever thread."""
    handle = fake.handle
    first = threading.Event()
    barrier = threading.Barrier(3, timeout=5)

    def handle_setting_cookie(method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        reply = handle(method, target, headers, body)
        if not first.is_set():
            first.set()
            reply.headers["Set-Cookie"] = "__cf_bm=abc; Path=/; HttpOnly"
        elif "page=9" not in target:
            # The first three requests of the batch are held until all three are in flight: three worker threads.
            barrier.wait()
        return reply

    fake.handle = handle_setting_cookie  # type: ignore[method-assign]
    transports: list[Any] = []

    def factory(settings: Settings, cookies: CookieJar) -> Any:
        transport = backend(settings.http_client)(settings, cookies)
        transports.append(transport)
        return transport

    settings = make_settings(sofascore_base_url=fake.base_url, http_concurrency=3)
    paths = [f"/user-account/{GOAL_GURU}/predictions?page={page}" for page in (1, 2, 3)]
    paths += [f"/user-account/{GOAL_GURU}/predictions?page=9"] * 9
    with SofascoreClient(settings, transport_factory=factory) as client:
        assert client.get("/user-account/vote-ranking").ok
        results = list(client.fetch_many(paths, threading.Event()))
        assert {cookie.name: cookie.value for cookie in client.cookies} == {"__cf_bm": "abc"}
    assert len(results) == 12 and all(r.ok for _, r in results)
    assert len(transports) == 3  # every worker thread took part
    assert sent_cookies(fake) == [None] + ["__cf_bm=abc"] * 12


def test_a_cookie_set_again_replaces_the_one_sent_before(
    fake: FakeSofascore, make_settings: Callable[..., Settings],
) -> None:
    """Cloudflare renews `__cf_bm` every half hour: the new value goes out, alone, on the requests after."""
    handle = fake.handle
    values = iter(["abc", "def"])

    def handle_renewing_cookie(method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        reply = handle(method, target, headers, body)
        if value := next(values, None):
            reply.headers["Set-Cookie"] = f"__cf_bm={value}; Path=/; HttpOnly"
        return reply

    fake.handle = handle_renewing_cookie  # type: ignore[method-assign]
    with SofascoreClient(make_settings(sofascore_base_url=fake.base_url, http_concurrency=1)) as client:
        for _ in range(3):
            assert client.get("/user-account/vote-ranking").ok
    assert sent_cookies(fake) == [None, "__cf_bm=abc", "__cf_bm=def"]


def test_requests_go_through_the_proxy_with_its_credentials(
    fake: FakeSofascore, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with HttpProxy() as proxy:
        settings = make_settings(sofascore_base_url=fake.base_url,
                                 proxy_url=proxy.url_with("scraper", "hunter2secret"))
        with SofascoreClient(settings) as client:
            assert client.get("/user-account/vote-ranking").ok
            assert client.get(f"/user-account/{GOAL_GURU}/predictions?page=0").ok
    assert fake.count() == 2
    # tls-client tunnels (CONNECT), curl forwards plain-HTTP requests whole: either way, with the credentials.
    assert proxy.requests
    credentials = "Basic " + base64.b64encode(b"scraper:hunter2secret").decode()
    assert all(r.authorization == credentials for r in proxy.requests)
    assert "hunter2secret" not in caplog.text


def test_only_proxy_url_decides_the_route(
    fake: FakeSofascore, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The proxy variables of the environment, which libcurl reads by itself, change nothing: switching the
    client must not change the route."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    with SofascoreClient(make_settings(sofascore_base_url=fake.base_url)) as client:
        assert client.get("/user-account/vote-ranking").ok
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "*")
    with HttpProxy() as proxy:
        with SofascoreClient(make_settings(sofascore_base_url=fake.base_url, proxy_url=proxy.url)) as client:
            assert client.get("/user-account/vote-ranking").ok
        assert len(proxy.requests) == 1
    assert fake.count() == 2


def test_a_gzipped_answer_is_read_decoded(fake: FakeSofascore, make_settings: Callable[..., Settings]) -> None:
    handle = fake.handle

    def gzipped(method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        reply = handle(method, target, headers, body)
        reply.body = gzip.compress(reply.body)
        reply.headers["Content-Encoding"] = "gzip"
        return reply

    fake.handle = gzipped  # type: ignore[method-assign]
    with SofascoreClient(make_settings(sofascore_base_url=fake.base_url)) as client:
        result = client.get("/user-account/vote-ranking")
    assert result.ok and json.loads(result.text) == {"ranking": fake.ranking}


def test_the_library_not_chosen_is_never_loaded(http_client: str, tmp_path: Any) -> None:
    """Each library is a native one of its own (curl_cffi's is 3 MB resident): the fetcher loads only its own."""
    script = ("import sys; from shared.settings import Settings; from fetcher.client import SofascoreClient; "
              "import fetcher.main; "
              "client = SofascoreClient(Settings(_env_file=None, http_client=sys.argv[1])); "
              "client._transport(); client.close(); "
              "print(*sorted(m for m in ('tls_client', 'curl_cffi') if m in sys.modules))")
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", script, http_client], cwd=root, capture_output=True, text=True,
                            timeout=60, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [http_client.replace("-", "_")]


def test_the_fetch_command_loads_no_database_driver_nor_rich() -> None:
    """`sofamon fetch` builds the parser of every command: the database drivers and rich came with it,
    ~11 MB resident that the fetcher never used."""
    script = ("import sys; import sofamon.cli; sofamon.cli.build_parser(); import fetcher.main; "
              "print(*sorted(m for m in ('psycopg', 'sqlite3', 'rich') if m in sys.modules))")
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60,
                            env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


# -- the process ------------------------------------------------------------------------------------------


def test_sigterm_stops_the_loop_promptly_with_status_0(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, tmp_path: Any,
) -> None:
    env = {k: v for k, v in os.environ.items() if k.upper() not in {f.upper() for f in Settings.model_fields}}
    env.update(REDIS_URL=settings.redis_url, REDIS_PREFIX=settings.redis_prefix,
               SOFASCORE_BASE_URL=fake.base_url, DATABASE_URL=settings.database_url, HTTP_CLIENT=settings.http_client)
    proc = subprocess.Popen([sys.executable, "-m", "sofamon.cli", "fetch"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(20, proc.kill)  # a hung child must not hang the suite
    killer.start()
    try:
        lines = []
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if "Next poll in" in line:
                break
        assert any("Next poll in" in line for line in lines), "".join(lines)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 5
        rest = proc.stderr.read()  # type: ignore[union-attr]
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
    assert "fetcher stopped" in rest and "Traceback" not in rest
    keys = Keys.of(settings)
    assert redis_conn.xlen(keys.fetched) >= 1
    assert list(redis_conn.scan_iter(match=keys.heartbeats)) == []  # a clean exit clears its heartbeat
    assert state(redis_conn, settings)["next_poll_at"] != ""


def test_one_malformed_leaderboard_entry_leaves_the_others_monitored(
    fake: FakeSofascore, settings: Settings, redis_conn: redis.Redis, open_fetcher: Callable[..., Fetcher],
) -> None:
    expected = ranked_ids(fake)
    with fake.lock:
        fake.ranking = [{"nickname": "no id"}, *fake.ranking]
    open_fetcher(settings).run_cycle()
    assert json.loads(state(redis_conn, settings)["monitored"]) == expected


# -- odds on a cadence by time to kick-off (fetcher/cadence.py) --------------------------------------------
def odds_hits(fake: FakeSofascore, event: int) -> int:
    return fake.hits(f"/event/{event}/odds/1/all")


def watch_with_odds(fake: FakeSofascore, conn: redis.Redis, settings: Settings, events: dict[int, float]) -> None:
    """Watch these events (id -> kick-off), each with the fixture's odds served for it."""
    odds = load_fixture("event-15981204-odds-all.json")
    for event in events:
        fake.add_event_odds(event, odds)
    conn.zadd(Keys.of(settings).watched_events, {str(e): start for e, start in events.items()})


def cycles(fetcher: Fetcher, clock: Clock, n: int, every: float) -> None:
    for i in range(n):
        if i:
            clock.advance(every)
        fetcher.run_cycle()


def test_odds_far_events_polled_once_near_ones_every_cycle_none_after_kick_off(
        fake: FakeSofascore, settings: Settings, open_fetcher: Callable[..., Fetcher], redis_conn: redis.Redis,
        clock: Clock) -> None:
    days, hours, kicks_off = 9_000_001, 9_000_002, 9_000_003
    near = 9_000_004
    watch_with_odds(fake, redis_conn, settings, {days: REF_NOW + 3 * 86400, hours: REF_NOW + 5 * 3600,
                                                kicks_off: REF_NOW + 12 * 60, near: REF_NOW + 3600})
    fetcher = open_fetcher(settings)
    cycles(fetcher, clock, 6, 300)  # 25 minutes of 5-minute cycles
    assert {e: odds_hits(fake, e) for e in (days, hours, kicks_off, near)} == {
        days: 1, hours: 1, kicks_off: 3, near: 6}  # kicks_off: at 12, 7 and 2 minutes to go, then never
    keys = Keys.of(settings)
    # The kicked-off event left the watched set, and its poll time with it.
    assert sorted(redis_conn.hkeys(keys.odds_fetched)) == sorted(str(e).encode() for e in (days, hours, near))
    assert len(of_kind(redis_conn, settings, "odds")) == 1 + 1 + 3 + 6


def test_odds_closing_poll_inside_the_last_10_minutes(
        fake: FakeSofascore, make_settings: Callable[..., Settings], open_fetcher: Callable[..., Fetcher],
        redis_conn: redis.Redis, clock: Clock) -> None:
    # Without the every-cycle band only the closing poll brings the event back before its 30 minutes are up.
    settings = make_settings(sofascore_base_url=fake.base_url, odds_every_cycle_within_hours=0)
    event = 9_000_011
    watch_with_odds(fake, redis_conn, settings, {event: REF_NOW + 25 * 60})
    fetcher = open_fetcher(settings)
    cycles(fetcher, clock, 3, 300)  # 25, 20, 15 minutes to go
    assert odds_hits(fake, event) == 1
    cycles(fetcher, clock, 2, 300)  # (15) 10 minutes to go: the closing poll; then 5: done
    assert odds_hits(fake, event) == 2
    assert len(of_kind(redis_conn, settings, "odds")) == 2


def test_odds_404_asked_again_only_after_the_slow_band_and_logged_once(
        fake: FakeSofascore, settings: Settings, open_fetcher: Callable[..., Fetcher], redis_conn: redis.Redis,
        clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    event, fine = 9_000_021, 9_000_022
    watch_with_odds(fake, redis_conn, settings, {event: REF_NOW + 6 * 3600, fine: REF_NOW + 6 * 3600})
    fake.set_mode("notfound", f"/event/{event}/odds")
    fetcher = open_fetcher(settings)
    cycles(fetcher, clock, 24, 300)  # 0 .. 115 minutes: the 404 is not asked again within the slow band
    assert odds_hits(fake, event) == 1
    assert odds_hits(fake, fine) == 4  # its neighbour with odds: every 30 minutes (6 to 4 hours to go)
    clock.advance(300)  # 120 minutes: due again, still 404
    fetcher.run_cycle()
    clock.advance(300)
    fetcher.run_cycle()
    assert odds_hits(fake, event) == 2
    # A restarted fetcher knows the event has no odds: no new line for it either.
    clock.advance(2 * 3600)
    open_fetcher(settings).run_cycle()
    assert odds_hits(fake, event) == 3
    lines = warnings_about(caplog, f"odds for event {event}")
    assert len(lines) == 1 and "not found (HTTP 404)" in lines[0].getMessage()
    assert "asked again at most every 120 min" in lines[0].getMessage()
    assert not warnings_about(caplog, f"odds for event {fine}")


def test_odds_price_move_of_a_near_event_is_still_alerted(
        fake: FakeSofascore, settings: Settings, open_fetcher: Callable[..., Fetcher], redis_conn: redis.Redis,
        clock: Clock, database: Database) -> None:
    near = 15981204  # GoalGuru's home win at 6/5; the fake serves the fixture's kick-off unshifted
    clock.now = 1804950000 - 90 * 60  # 90 minutes before kick-off: odds every cycle
    fake.set_price(near, 1, "1", "6/5")  # the baseline equals the tip's price: nothing to alert yet
    fetcher = open_fetcher(settings)
    processor = Processor(settings, redis_conn, database, name="p1", clock=clock)

    def round_() -> list[dict[str, Any]]:
        fetcher.run_cycle()
        assert processor.run(burst=True) == 0
        clock.advance(300)
        with database.tx() as tx:
            rows = tx.all("SELECT payload FROM alerts WHERE kind = 'line_movement' AND event_id = ?", (near,))
        return [json.loads(r[0]) for r in rows]

    assert round_() == []  # the tip is alerted and its event watched
    assert round_() == [] and odds_hits(fake, near) == 1  # the baseline
    fake.set_price(near, 1, "1", "4/5")
    moves = round_()
    assert odds_hits(fake, near) == 2
    assert [(m["tip_odds"], m["current_odds"]) for m in moves] == [(2.2, 1.8)]


def busiest_minute(fake: FakeSofascore) -> int:
    """The most requests the fake saw start within any 60 s of the test's clock."""
    times = sorted(r.at for r in fake.requests)
    return max((sum(1 for t in times if start <= t < start + 60) for start in times), default=0)


def test_the_budget_spreads_a_big_cycle_nearest_kick_offs_first_and_is_never_exceeded(
        make_settings: Callable[..., Settings], redis_conn: redis.Redis, clock: Clock,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    users = [f"user{i:02d}" for i in range(25)]
    near, far = 9_000_031, 9_000_032
    with FakeSofascore(clock=clock) as fake:
        fake.ranking = []
        for uid in users:
            fake.set_feed(uid, [])
        settings = make_settings(sofascore_base_url=fake.base_url, target_users=users,
                                 upstream_max_requests_per_minute=10)
        watch_with_odds(fake, redis_conn, settings, {far: clock() + 30 * 3600, near: clock() + 3600})
        client = SofascoreClient(settings)
        try:
            fetcher = Fetcher(settings, redis_conn, client, clock=clock)
            fetcher.sleep = clock.advance
            fetcher.run_cycle()
            first = list(fake.requests)
            clock.advance(300)
            fetcher.run_cycle()  # the near event again, and every predictor: the window carries over
        finally:
            client.close()
    # Nothing left out, only later: every predictor and both events asked once in the first cycle.
    assert sorted(r.path for r in first if "/predictions" in r.path) == sorted(
        f"/api/v1/user-account/{u}/predictions?page=0" for u in users)
    at = {r.path.split("/api/v1")[1]: r.at for r in first}
    # The nearest kick-off goes in the first batch, the far one in the last, after the predictors.
    assert at[f"/event/{near}/odds/1/all"] == first[0].at
    assert at[f"/event/{far}/odds/1/all"] == max(at.values()) > first[0].at
    assert first[-1].at - first[0].at >= 120  # 28 requests at 10 a minute: spread over two more minutes
    assert busiest_minute(fake) <= 10
    # What status shows: the requests of the last hour by kind, as the fake counted them.
    made = usage.last_hour(redis_conn, Keys.of(settings), clock())
    assert made.by_kind == {"leaderboard": 2, "predictions": 50, "odds": 3} and made.busiest_minute == 10
    spread = [r for r in caplog.records if "request budget" in r.getMessage()]
    assert len(spread) == 2 and "UPSTREAM_MAX_REQUESTS_PER_MINUTE=10" in spread[0].getMessage()
