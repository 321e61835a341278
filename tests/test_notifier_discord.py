"""One webhook call: Discord's answers classified, its rate-limit headers read, and the URL never in what
comes back."""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
import requests

from notifier import discord
from tests.fakes.discord import CLOUDFLARE_BLOCK_HTML, DEFAULT_WEBHOOK_TOKEN, FakeDiscord

TIMEOUT = 5.0

BODY = discord.message([{"title": "hello", "description": "world"}])


@pytest.fixture
def fake() -> Iterator[FakeDiscord]:
    with FakeDiscord(bucket_limit=2, bucket_window=5.0, channel_per_minute=None) as server:
        yield server


def _safe(result: discord.PostResult) -> None:
    assert DEFAULT_WEBHOOK_TOKEN not in repr(result)
    assert "/api/webhooks/" not in repr(result)


def test_sent_with_message_id_and_headers(fake: FakeDiscord) -> None:
    result = discord.post(discord.new_session(), fake.url(), BODY, timeout=TIMEOUT)
    assert result.outcome == discord.SENT and result.status == 200
    assert result.message_id == fake.accepted[0]["message_id"]
    assert result.headers.limit == 2 and result.headers.remaining == 1
    assert result.headers.bucket and 0 < (result.headers.reset_after or 0) <= 5.0
    assert fake.accepted[0]["payload"] == BODY


def test_rate_limited(fake: FakeDiscord) -> None:
    session = discord.new_session()
    for _ in range(2):
        assert discord.post(session, fake.url(), BODY, timeout=TIMEOUT).outcome == discord.SENT
    result = discord.post(session, fake.url(), BODY, timeout=TIMEOUT)
    assert result.outcome == discord.RATE_LIMITED and result.status == 429
    assert 0 < result.retry_after <= 5.0 and result.is_global is False and result.scope == "user"
    assert result.headers.remaining == 0


def test_hidden_channel_limit_is_rate_limited_with_shared_scope() -> None:
    with FakeDiscord(bucket_limit=10, channel_per_minute=1) as fake:
        session = discord.new_session()
        assert discord.post(session, fake.url(), BODY, timeout=TIMEOUT).outcome == discord.SENT
        result = discord.post(session, fake.url(), BODY, timeout=TIMEOUT)
    assert result.outcome == discord.RATE_LIMITED and result.scope == "shared" and result.retry_after > 50


@pytest.mark.parametrize("status", [401, 404])
def test_broken(fake: FakeDiscord, status: int) -> None:
    fake.set_broken("111", status)
    result = discord.post(discord.new_session(), fake.url(), BODY, timeout=TIMEOUT)
    assert result.outcome == discord.BROKEN and result.status == status
    _safe(result)


def test_wrong_token_is_broken(fake: FakeDiscord) -> None:
    wrong = fake.url().replace(DEFAULT_WEBHOOK_TOKEN, "other-token")
    result = discord.post(discord.new_session(), wrong, BODY, timeout=TIMEOUT)
    assert result.outcome == discord.BROKEN and result.status == 401


def test_invalid_embed_gives_discords_error_as_short_text(fake: FakeDiscord) -> None:
    body = discord.message([{"title": "x" * 300}])
    result = discord.post(discord.new_session(), fake.url(), body, timeout=TIMEOUT)
    assert result.outcome == discord.INVALID and result.status == 400
    assert result.error is not None
    assert "50035" in result.error and "embeds.0.title" in result.error and "256 or fewer" in result.error
    assert len(result.error) <= discord.ERROR_MAX
    _safe(result)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(fake: FakeDiscord, status: int) -> None:
    fake.fail_next(1, status)
    result = discord.post(discord.new_session(), fake.url(), BODY, timeout=TIMEOUT)
    assert result.outcome == discord.TRANSIENT and result.status == status and str(status) in (result.error or "")
    _safe(result)


def test_timeout_is_transient_and_safe(fake: FakeDiscord) -> None:
    fake.timeout_next(1, delay=1.0)
    result = discord.post(discord.new_session(), fake.url(), BODY, timeout=0.2)
    assert result.outcome == discord.TRANSIENT and result.error == "timeout" and result.status is None
    _safe(result)


def test_connection_error_is_transient_and_safe() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/webhooks/111/{DEFAULT_WEBHOOK_TOKEN}"
    result = discord.post(discord.new_session(), url, BODY, timeout=1)
    assert result.outcome == discord.TRANSIENT and result.error == "connection error"
    _safe(result)


def test_with_wait_keeps_other_query_parameters() -> None:
    assert discord.with_wait("https://d/api/webhooks/1/t") == "https://d/api/webhooks/1/t?wait=true"
    assert discord.with_wait("https://d/api/webhooks/1/t?thread_id=5&wait=false") == \
        "https://d/api/webhooks/1/t?thread_id=5&wait=true"


def test_describe_error_flattens_nested_errors() -> None:
    body = {"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {"0": {"fields": {"1": {
        "value": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}}}}}}}
    assert discord.describe_error(body, 400) == \
        "HTTP 400 code 50035: Invalid Form Body (embeds.0.fields.1.value: This field is required)"
    assert discord.describe_error("<html>", 502) == "HTTP 502"


def test_parse_headers_case_insensitive() -> None:
    parsed = discord.parse_headers({"x-ratelimit-limit": "5", "X-RATELIMIT-REMAINING": "4",
                                    "X-RateLimit-Reset-After": "1.5", "X-RateLimit-Bucket": " abc ",
                                    "X-RateLimit-Scope": "Shared", "X-RateLimit-Global": "true"})
    assert parsed == discord.RateLimitHeaders(limit=5, remaining=4, reset_after=1.5, bucket="abc", scope="shared",
                                              is_global=True)
    assert parsed.complete


def test_parse_headers_missing_or_junk() -> None:
    assert discord.parse_headers({}) == discord.RateLimitHeaders()
    assert not discord.parse_headers({}).complete
    junk = discord.parse_headers({"X-RateLimit-Limit": "many", "X-RateLimit-Remaining": "2",
                                  "X-RateLimit-Reset-After": "-1"})
    assert junk.limit is None and junk.remaining == 2 and junk.reset_after is None and not junk.complete


def _answer(status: int, body: object, headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers)
    return response


def test_retry_after_from_the_body_then_the_header_then_the_bucket_reset() -> None:
    url = f"https://discord.test/api/webhooks/111/{DEFAULT_WEBHOOK_TOKEN}"
    reset = {"X-RateLimit-Reset-After": "4.5"}
    assert discord.classify(_answer(429, {"retry_after": 2.5}, {"Retry-After": "7", **reset}), url).retry_after == 2.5
    assert discord.classify(_answer(429, {"retry_after": -1}, {"retry-after": "7", **reset}), url).retry_after == 7.0
    assert discord.classify(_answer(429, {}, {"Retry-After": "soon", **reset}), url).retry_after == 4.5
    assert discord.classify(_answer(429, {}, {}), url).retry_after == discord.RETRY_AFTER_UNKNOWN


# -- only Discord's own verdicts mean "broken" --------------------------------------------------------------
def _page(status: int, html: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = html.encode()
    response.headers.update({"Content-Type": "text/html; charset=UTF-8", "Server": "cloudflare"})
    return response


URL = f"https://discord.test/api/webhooks/111/{DEFAULT_WEBHOOK_TOKEN}"
CLOUDFLARE = CLOUDFLARE_BLOCK_HTML


@pytest.mark.parametrize("status, body, outcome", [
    (401, {"message": "Invalid Webhook Token", "code": 50027}, discord.BROKEN),
    (404, {"message": "Unknown Webhook", "code": 10015}, discord.BROKEN),
    (404, {"message": "404: Not Found", "code": 0}, discord.BROKEN),
    (403, {"message": "Invalid Webhook Token", "code": 50027}, discord.BROKEN),
    (400, {"message": "Unknown Webhook", "code": 10015}, discord.BROKEN),
    (400, {"message": "Invalid Form Body", "code": 50035}, discord.INVALID),
    (413, {"message": "Request entity too large", "code": 40005}, discord.INVALID),
    (403, {"message": "Missing Permissions", "code": 50013}, discord.TRANSIENT),
    (403, CLOUDFLARE, discord.TRANSIENT),
    (401, "<html><body>401 Authorization Required</body></html>", discord.TRANSIENT),
    (404, "<html><head><title>404 Not Found</title></head></html>", discord.TRANSIENT),
    (400, "<html><head><title>400 Bad Request</title></head><body>nginx</body></html>", discord.TRANSIENT),
    (502, "<html><head><title>502 Bad Gateway</title></head></html>", discord.TRANSIENT),
    (500, {"message": "500: Internal Server Error", "code": 0}, discord.TRANSIENT),
])
def test_only_discords_own_verdicts_mark_broken_or_refused(status: int, body: object, outcome: str) -> None:
    answer = _page(status, body) if isinstance(body, str) else _answer(status, body, {})
    result = discord.classify(answer, URL)
    assert (result.outcome, result.status) == (outcome, status)
    _safe(result)


def test_a_cloudflare_page_says_what_it_is(fake: FakeDiscord) -> None:
    fake.edge_block_next(1, 403)
    result = discord.post(discord.new_session(), fake.url(), BODY, timeout=TIMEOUT)
    assert result.outcome == discord.TRANSIENT and result.status == 403 and result.blocked
    assert result.error == "HTTP 403, not from Discord (HTML page: Attention Required! | Cloudflare)"
    _safe(result)
    # Discord's own 5xx is transient too, but nothing stands in front of it.
    fake.fail_next(1, 503)
    result = discord.post(discord.new_session(), fake.url(), BODY, timeout=TIMEOUT)
    assert result.outcome == discord.TRANSIENT and not result.blocked
    assert discord.post(discord.new_session(), fake.url(), BODY, timeout=TIMEOUT).outcome == discord.SENT
