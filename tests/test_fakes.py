"""Self-tests of the local fakes (why: every other test trusts them)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fakes.discord import DEFAULT_WEBHOOK_TOKEN, FakeDiscord, validate_message
from tests.fakes.sofascore import REF_NOW, FakeSofascore, ref_ts

ROOT = Path(__file__).resolve().parents[1]
GURU = "6a1f0c2e9b3d4e5f60718293"
NOW = REF_NOW + 1_000_000  # an arbitrary "real" now, far from REF_NOW


@pytest.fixture
def sofa() -> Iterator[FakeSofascore]:
    with FakeSofascore(clock=lambda: NOW + 0.7) as fake:
        yield fake


@pytest.fixture
def discord() -> Iterator[FakeDiscord]:
    with FakeDiscord(bucket_limit=3, bucket_window=0.5, channel_per_minute=None) as fake:
        yield fake


def embed(**kw: object) -> dict[str, object]:
    return {"embeds": [{"title": "t", **kw}]}


# -- Sofascore -------------------------------------------------------------------
def test_routes_and_timestamp_shift(sofa: FakeSofascore) -> None:
    ranking = requests.get(f"{sofa.base_url}/user-account/vote-ranking", timeout=5)
    assert ranking.headers["Content-Type"] == "application/json"
    assert len(ranking.json()["ranking"]) == 12
    page0 = requests.get(f"{sofa.base_url}/user-account/{GURU}/predictions?page=0", timeout=5).json()
    assert page0["hasNextPage"] is True
    soon = next(p for p in page0["predictions"] if p["eventId"] == 15979901)
    assert soon["startDateTimestamp"] - NOW == 3 * 3600  # "+3 h" holds against the clock
    assert requests.get(f"{sofa.base_url}/user-account/{GURU}/predictions?page=7",
                        timeout=5).json() == {"predictions": []}
    odds = requests.get(f"{sofa.base_url}/event/15981204/odds/1/all", timeout=5).json()
    assert odds["markets"][0]["choices"][0]["fractionalValue"] == "4/5"


def test_not_found_json(sofa: FakeSofascore) -> None:
    for path in ("/user-account/ffffffffffffffffffffffff/predictions?page=0",
                 "/event/1/odds/1/all"):
        resp = requests.get(sofa.base_url + path, timeout=5)
        assert resp.status_code == 404
        assert resp.json() == {"error": {"code": 404, "message": "Not Found"}}


def test_helpers_mutate_served_state(sofa: FakeSofascore) -> None:
    sofa.add_prediction(GURU, {"eventId": 1, "vote": "1", "startDateTimestamp": ref_ts(600)})
    sofa.set_price(15981204, 1, "1", "1/2")
    first = requests.get(f"{sofa.base_url}/user-account/{GURU}/predictions", timeout=5).json()
    assert first["predictions"][0]["startDateTimestamp"] == NOW + 600
    odds = requests.get(f"{sofa.base_url}/event/15981204/odds/1/all", timeout=5).json()
    assert odds["markets"][0]["choices"][0]["fractionalValue"] == "1/2"
    assert sofa.count("/event/") == 1 and sofa.count() == 2


def test_failure_modes(sofa: FakeSofascore) -> None:
    url = f"{sofa.base_url}/user-account/vote-ranking"
    sofa.set_mode("challenge", count=1)
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 403 and resp.headers["cf-mitigated"] == "challenge"
    assert "Just a moment..." in resp.text and "cf-chl" in resp.text
    sofa.set_mode("ratelimit", "/user-account/", count=1, retry_after=7)
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    sofa.set_mode("malformed", count=1)
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        resp.json()
    sofa.set_mode("html200", count=1)
    assert requests.get(url, timeout=5).headers["Content-Type"].startswith("text/html")
    sofa.set_mode("error", "/event/")
    assert requests.get(f"{sofa.base_url}/event/15981204/odds/1/all", timeout=5).status_code == 500
    assert requests.get(url, timeout=5).status_code == 200  # prefix did not match
    sofa.clear_modes()
    assert requests.get(f"{sofa.base_url}/event/15981204/odds/1/all", timeout=5).status_code == 200


def test_slow_mode_does_not_block_others(sofa: FakeSofascore) -> None:
    sofa.set_mode("slow", "/event/", delay=1.0)
    with pytest.raises(requests.Timeout):
        requests.get(f"{sofa.base_url}/event/15981204/odds/1/all", timeout=0.2)
    started = time.monotonic()
    assert requests.get(f"{sofa.base_url}/user-account/vote-ranking", timeout=5).ok
    assert time.monotonic() - started < 0.5


def test_answers_on_a_kept_alive_connection_take_no_nagle_delay(sofa: FakeSofascore) -> None:
    """Headers and body are written apart: without TCP_NODELAY each answer waits ~40 ms for a delayed ACK,
    which would put 40 ms into every latency the benchmarks and tests measure."""
    with requests.Session() as session:
        times = []
        for _ in range(21):
            started = time.perf_counter()
            assert session.get(f"{sofa.base_url}/user-account/vote-ranking", timeout=5).ok
            times.append(time.perf_counter() - started)
    assert sorted(times)[len(times) // 2] < 0.02


def test_latency_delays_every_answer(sofa: FakeSofascore) -> None:
    sofa.latency = 0.3
    started = time.monotonic()
    assert requests.get(f"{sofa.base_url}/event/15981204/odds/1/all", timeout=5).ok
    assert requests.get(f"{sofa.base_url}/event/1/odds/1/all", timeout=5).status_code == 404
    assert time.monotonic() - started >= 0.6


# -- Discord ---------------------------------------------------------------------
def test_wait_true_returns_increasing_ids(discord: FakeDiscord) -> None:
    first = requests.post(discord.url("111") + "?wait=true", json={"content": "hi"}, timeout=5)
    second = requests.post(discord.url("111") + "?wait=true", json=embed(), timeout=5)
    assert first.status_code == second.status_code == 200
    assert int(second.json()["id"]) > int(first.json()["id"])
    assert requests.post(discord.url("111"), json={"content": "x"}, timeout=5).status_code == 204
    assert [a["message_id"] for a in discord.accepted[:2]] == [first.json()["id"], second.json()["id"]]
    assert len(discord.accepted_embeds()) == 1


def test_bucket_429_headers_and_reset(discord: FakeDiscord) -> None:
    statuses = [requests.post(discord.url(), json={"content": "x"}, timeout=5) for _ in range(4)]
    assert [r.status_code for r in statuses] == [204, 204, 204, 429]
    assert statuses[2].headers["X-RateLimit-Remaining"] == "0"
    limited = statuses[3]
    assert limited.headers["X-RateLimit-Scope"] == "user"
    body = limited.json()
    assert body["global"] is False and 0 < body["retry_after"] <= 0.5
    assert limited.headers["Retry-After"] == str(math.ceil(body["retry_after"]))
    for name in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
        assert f"X-RateLimit-{name}" in limited.headers
    time.sleep(body["retry_after"] + 0.05)
    assert requests.post(discord.url(), json={"content": "x"}, timeout=5).status_code == 204
    assert discord.count_429 == 1 and len(discord.accepted) == 4


def test_hidden_channel_limit_is_shared_scope() -> None:
    with FakeDiscord(bucket_limit=100, channel_per_minute=2) as fake:
        codes = [requests.post(fake.url(), json={"content": "x"}, timeout=5) for _ in range(3)]
    assert [r.status_code for r in codes] == [204, 204, 429]
    assert codes[2].headers["X-RateLimit-Scope"] == "shared"
    assert 59 < codes[2].json()["retry_after"] <= 60


def test_validation_and_auth_errors(discord: FakeDiscord) -> None:
    resp = requests.post(discord.url(), json=embed(description="d" * 4097), timeout=5)
    assert resp.status_code == 400 and resp.json()["code"] == 50035
    assert "description" in json.dumps(resp.json()["errors"])
    bad = requests.post(discord.url(), data=b"{not json", timeout=5,
                        headers={"Content-Type": "application/json"})
    assert bad.json() == {"message": "400: Bad Request", "code": 0}
    wrong = requests.post(discord.url().replace(DEFAULT_WEBHOOK_TOKEN, "nope"), json={"content": "x"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["code"] == 50027
    unknown = requests.post(f"{discord.root_url}/api/webhooks/999/t", json={"content": "x"}, timeout=5)
    assert unknown.status_code == 404 and unknown.json()["code"] == 10015
    assert discord.count_400 == 2 and discord.count_401_403_404 == 2 and not discord.accepted
    assert requests.post(discord.url(), json={"content": "ok"}, timeout=5).headers[
        "X-RateLimit-Remaining"] == "2"  # invalid requests consumed nothing


@pytest.mark.parametrize("payload", [
    {},
    {"content": "   "},
    {"content": "x" * 2001},
    {"embeds": [{"title": "t"}] * 11},
    {"embeds": [{"fields": [{"name": "n", "value": ""}]}]},
    {"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]},
    {"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]},
])
def test_validate_message_rejects(payload: dict[str, object]) -> None:
    assert validate_message(payload)


def test_fault_injection(discord: FakeDiscord) -> None:
    discord.fail_next(1, status=503)
    assert requests.post(discord.url(), json={"content": "x"}, timeout=5).status_code == 503
    discord.timeout_next(1, delay=0.6)
    with pytest.raises(requests.Timeout):
        requests.post(discord.url(), json={"content": "x"}, timeout=0.2)
    assert len(discord.accepted) == 1  # posted although the client gave up
    discord.set_broken("111", 404)
    assert requests.post(discord.url(), json={"content": "x"}, timeout=5).status_code == 404


def test_server_never_logs_token(capfd: pytest.CaptureFixture[str], discord: FakeDiscord) -> None:
    requests.post(discord.url(), json={"content": "x"}, timeout=5)
    requests.post(discord.url(), data=b"{", timeout=5)
    out, err = capfd.readouterr()
    assert DEFAULT_WEBHOOK_TOKEN not in out + err


def test_discord_main_prints_url_and_summary() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.discord", "--port", "0"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert requests.post(url, json=embed(), timeout=5).status_code == 204
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert json.loads(out.strip().splitlines()[-1])["accepted_embeds"] == 1
