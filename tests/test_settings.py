"""Configuration: defaults, parsing, and bad values stopping startup with one clear line."""
from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.logs import RedactingFilter, redact
from shared.settings import Settings


def test_defaults_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TARGET_USERS", " a1, b2 ,,c3")
    settings = Settings(_env_file=None)
    assert settings.target_users == ["a1", "b2", "c3"]
    assert settings.top_predictors_limit == 10 and settings.min_avg_odds == 1.5
    assert settings.discord_webhook_url is None
    assert settings.database_url == "sqlite:///data/sofascore_monitor.db"


def test_dotenv_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("MIN_ROI=4.5\nPOLL_TIMEZONE=Europe/Madrid\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.min_roi == 4.5 and settings.poll_timezone == "Europe/Madrid"


@pytest.mark.parametrize(
    ("name", "value"),
    [("MIN_ROI", "lots"), ("POLL_TIMEZONE", "Mars/Olympus"), ("HTTP_CONCURRENCY", "0"),
     ("DATABASE_URL", "mysql://x"), ("LOG_LEVEL", "LOUD"), ("LINE_MOVEMENT_THRESHOLD", "-1"),
     ("LINE_MOVEMENT_THRESHOLD", "inf"), ("MIN_ROI", "nan"), ("REDIS_URL", "redis://127.0.0.1:abc/0"),
     ("DATABASE_URL", "postgresql://u@127.0.0.1:abc/db"), ("PROXY_URL", "notaproxy"),
     ("DISCORD_WEBHOOK_URL", "discord.com/api/webhooks/1/tok"), ("NOTIFIER_RETRY_INTERVALS", "5,soon"),
     # Surely a mistake although well-formed (issue 9): a percent typed as a fraction, a negative wait,
     # a URL that is not a webhook's, half of the dashboard's basic auth.
     ("LINE_MOVEMENT_THRESHOLD", "15"), ("LINE_MOVEMENT_THRESHOLD", "1"), ("NOTIFIER_RETRY_INTERVALS", "5,-15,60"),
     ("DISCORD_WEBHOOK_URL", "https://discord.com/channels/123/456"),
     ("DISCORD_HEALTH_WEBHOOK_URL", "https://discord.com/api/webhooks/123"),
     ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/abc/tok-SECRET-abc"),
     ("RQ_DASHBOARD_USERNAME", "operator"), ("RQ_DASHBOARD_PASSWORD", "s3cret-pass"),
     # Issue 10: a client the fetcher has no backend for; a profile tls-client would silently replace by its own.
     ("HTTP_CLIENT", "requests"), ("HTTP_IMPERSONATE", "chrome146"), ("HTTP_IMPERSONATE", "netscape_4"),
     # Issue 11: the daily digest's time is a local HH:MM, 24-hour.
     ("DIGEST_TIME", "24:00"), ("DIGEST_TIME", "9pm"), ("DIGEST_TIME", "07:30:00")],
)
def test_bad_value_stops_startup_with_one_line(name: str, value: str, tmp_path) -> None:
    env = {"PATH": os.environ["PATH"], name: value}
    result = subprocess.run([sys.executable, "-m", "sofamon.cli", "init-db"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_secret_webhook_never_echoed_in_config_errors(tmp_path) -> None:
    env = {"PATH": os.environ["PATH"], "DISCORD_MESSAGES_PER_MINUTE": "0",
           "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/1/tok-SECRET-abc"}
    result = subprocess.run([sys.executable, "-m", "sofamon.cli", "init-db"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "tok-SECRET" not in result.stderr + result.stdout


def test_log_redaction_masks_tokens_and_credentials() -> None:
    secrets = ["https://discord.com/api/webhooks/123/tok-SECRET-abc", "http://user:pa55word@proxy:8080"]
    text = "posting to https://discord.com/api/webhooks/123/tok-SECRET-abc?wait=true via http://user:pa55word@proxy:8080"
    masked = redact(text, secrets)
    assert "tok-SECRET" not in masked and "pa55word" not in masked
    assert "/api/webhooks/999/other-token-xyz" not in redact("x /api/webhooks/999/other-token-xyz y", [])
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed: %s", ("tok-SECRET-abc",), None)
    RedactingFilter(secrets).filter(record)
    assert "tok-SECRET" not in record.getMessage()


def run_cli(tmp_path: Path, env: dict[str, str], dotenv: str | None = None) -> subprocess.CompletedProcess[str]:
    """`sofamon init-db` with exactly this environment (and `.env`), in an empty directory."""
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    return subprocess.run([sys.executable, "-m", "sofamon.cli", "init-db"], env={"PATH": os.environ["PATH"], **env},
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)


WEBHOOK = "https://discord.com/api/webhooks/123456/tok-SECRET-abc"


@pytest.mark.parametrize("where", ["dotenv", "environment"])
def test_a_misspelled_name_stops_startup_naming_the_closest(where: str, tmp_path: Path) -> None:
    """Issue 9, finding 1: DISCORD_WEBHOK_URL used to be ignored, and the whole system ran dry."""
    if where == "dotenv":
        result = run_cli(tmp_path, {}, f"MIN_ROI=2\nDISCORD_WEBHOK_URL={WEBHOOK}\n")
    else:
        result = run_cli(tmp_path, {"DISCORD_WEBHOK_URL": WEBHOOK})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "DISCORD_WEBHOK_URL" in line and "did you mean DISCORD_WEBHOOK_URL?" in line
    assert (".env" in line) == (where == "dotenv")
    assert "tok-SECRET" not in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()


def test_any_unknown_name_in_dotenv_stops_startup(tmp_path: Path) -> None:
    """`.env` is ours alone: even a name without a known prefix is a mistake there (it would do nothing)."""
    result = run_cli(tmp_path, {}, "# comment\n\nexport WEBHOOK_URL=x\nMIN_ROI=2\n")
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "WEBHOOK_URL" in line and ".env" in line


def test_a_stray_line_in_dotenv_is_refused_without_showing_it(tmp_path: Path) -> None:
    result = run_cli(tmp_path, {}, "MIN_ROI=2\ntok-SECRET-pasted-alone\n")
    assert result.returncode == 2 and "PASTED" not in result.stderr.upper()
    assert result.stderr.strip().splitlines() == [
        "configuration error: .env has a line that is not NAME=value (not shown: it may hold a secret)"]


def test_names_other_programs_use_do_not_trip_the_check(tmp_path: Path) -> None:
    """Only the project's prefixes are checked in the environment, and a few names with those prefixes
    belong to other programs (the test suite's TEST_*, proxies, rq-dashboard's own options)."""
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "TEST_REDIS_URL": "redis://x", "TEST_DATABASE_URL": "sqlite:///x",
           "TEST_SERVERS": "own", "HTTP_PROXY": "http://proxy:3128", "http_proxy": "http://proxy:3128",
           "TIME_STYLE": "long-iso", "RQ_DASHBOARD_USERNAME": "operator", "RQ_DASHBOARD_PASSWORD": "pw",
           "RQ_DASHBOARD_URL_PREFIX": "/rq", "RQ_REDIS_URL": "redis://x", "SUPERVISOR_PROCESS_NAME": "p",
           "LOGNAME": "me", "LINES": "40", "min_roi": "1"}
    result = run_cli(tmp_path, env, "MIN_ROI=2\nlog_level=debug\n")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data").exists()


def test_the_checked_prefixes_come_from_the_settings() -> None:
    from shared.settings import settings_prefixes, unknown_names

    assert {"DISCORD_", "SOFASCORE_", "NOTIFIER_", "MIN_", "TOP_", "TIME_", "MATCH_", "LINE_", "HTTP_", "REDIS_",
            "DATABASE_", "POLL_", "SCAN_", "STREAM_", "RQ_DASHBOARD_", "PROXY_", "LOG_", "TARGET_",
            "LEADERBOARD_"} <= set(settings_prefixes())
    assert "RQ_" not in settings_prefixes()  # RQ_REDIS_URL and friends are rq's own
    assert unknown_names({"POLL_TIMEZONE": "UTC", "POLL_TIMEZOME": "UTC", "SCAN_INTERVAL": "3"}, None) == [
        "POLL_TIMEZOME (environment) is not a setting; did you mean POLL_TIMEZONE?",
        "SCAN_INTERVAL (environment) is not a setting; did you mean SCAN_INTERVAL_MINUTES?",
    ]
    assert unknown_names({"REDIS_PASSWORD": "x"}, None) == [
        "REDIS_PASSWORD (environment) is not a setting; did you mean REDIS_URL (redis://:password@host:port/db)?"]


def test_every_error_is_listed_one_line_each_never_a_secret(tmp_path: Path) -> None:
    env = {"DISCORD_HEALTH_WEBHOOK_URL": "https://discord.com/webhooks/1/tok-HEALTH-secret",
           "LINE_MOVEMENT_THRESHOLD": "15", "NOTIFIER_RETRY_INTERVALS": "5,-1", "RQ_DASHBOARD_PASSWORD": "pw-SECRET",
           "TOP_PREDICTOR_LIMIT": "20"}
    result = run_cli(tmp_path, env, f"DISCORD_WEBHOK_URL={WEBHOOK}\n")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 6 and all(line.startswith("configuration error: ") for line in lines)
    for name in ("DISCORD_WEBHOK_URL", "TOP_PREDICTOR_LIMIT", "DISCORD_HEALTH_WEBHOOK_URL", "LINE_MOVEMENT_THRESHOLD",
                 "NOTIFIER_RETRY_INTERVALS", "RQ_DASHBOARD_USERNAME"):
        assert sum(name in line for line in lines) == 1, name
    assert "SECRET" not in result.stderr + result.stdout


def test_a_profile_of_the_other_client_stops_startup_with_the_right_spelling(tmp_path: Path) -> None:
    """Switching HTTP_CLIENT but keeping the other library's profile name: one line, with the name this one uses."""
    result = run_cli(tmp_path, {"HTTP_CLIENT": "curl_cffi", "HTTP_IMPERSONATE": "chrome_146"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: HTTP_IMPERSONATE: not a browser profile curl_cffi knows; did you mean chrome146?"]


def test_http_clients_their_spellings_and_default_profiles() -> None:
    from shared.httpclients import DEFAULT_PROFILE, HTTP_CLIENTS, profiles

    default = Settings(_env_file=None)
    assert (default.http_client, default.http_impersonate, default.browser_profile) == ("tls-client", None, "chrome_146")
    for spelled, client in [("curl-cffi", "curl_cffi"), (" CURL_CFFI ", "curl_cffi"), ("tls_client", "tls-client")]:
        assert Settings(_env_file=None, http_client=spelled).http_client == client
    assert Settings(_env_file=None, http_client="curl_cffi").browser_profile == "chrome146"
    chosen = Settings(_env_file=None, http_client="curl_cffi", http_impersonate="chrome145")
    assert chosen.browser_profile == "chrome145"
    assert Settings(_env_file=None, http_impersonate=" ").browser_profile == "chrome_146"  # blank is unset
    # Each default is a name its library knows (tls-client would fall back to its own default silently).
    assert all(DEFAULT_PROFILE[client] in profiles(client) for client in HTTP_CLIENTS)


@pytest.mark.parametrize("url", [
    "https://discord.com/api/webhooks/123456789012345678/AbC-dEf_123",
    "https://discord.com/api/v10/webhooks/123456789012345678/AbC-dEf_123",
    "https://discordapp.com/api/webhooks/1/tok/?thread_id=42",
    "http://127.0.0.1:8123/api/webhooks/111/tok-SECRET-abc",  # tests/fakes/discord.py
])
def test_webhook_urls_discord_gives_are_accepted(url: str) -> None:
    settings = Settings(_env_file=None, discord_webhook_url=url, discord_health_webhook_url=url)
    assert settings.discord_webhook_url is not None and settings.discord_webhook_url.get_secret_value() == url


def test_sensible_values_are_accepted() -> None:
    settings = Settings(_env_file=None, line_movement_threshold=0.99, notifier_retry_intervals="0,1",
                        rq_dashboard_username="", rq_dashboard_password="")
    assert settings.notifier_retry_intervals == [0, 1] and settings.rq_dashboard_username is None
    both = Settings(_env_file=None, rq_dashboard_username="op", rq_dashboard_password="pw")
    assert both.rq_dashboard_password is not None


def test_the_digest_time_is_a_local_hh_mm_and_unset_or_empty_means_no_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).digest_time is None
    monkeypatch.setenv("DIGEST_TIME", "")
    assert Settings(_env_file=None).digest_time is None
    for text, expected in (("07:30", time(7, 30)), ("7:05", time(7, 5)), (" 23:59 ", time(23, 59)),
                           ("00:00", time(0, 0))):
        monkeypatch.setenv("DIGEST_TIME", text)
        assert Settings(_env_file=None).digest_time == expected


def test_passwords_in_service_urls_are_masked_in_logs() -> None:
    """Issue 9, finding 10: `redis://:password@host` (no user name) went to the logs as it was."""
    assert "hunter2" not in redact("Error connecting to redis://:hunter2@10.0.0.5:6379/0.", [])
    assert "hunter2" not in redact("rediss://default:hunter2@cache:6380/1 and redis+sentinel://:hunter2@s:26379", [])
    assert "hunter2" not in redact("postgresql://db.example/x?user=app&password=hunter2&sslmode=require", [])
    assert redact("redis://127.0.0.1:6379/0", []) == "redis://127.0.0.1:6379/0"
    settings = Settings(_env_file=None, redis_url="redis://:hunter2@10.0.0.5:6379/0",
                        database_url="postgresql://app:pg-pass-77@db/x")
    # The configured passwords are masked on their own too (a library may print one without its URL).
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "auth %s / %s failed", ("hunter2", "pg-pass-77"), None)
    RedactingFilter(settings.secrets()).filter(record)
    assert "hunter2" not in record.getMessage() and "pg-pass-77" not in record.getMessage()


def test_a_profile_that_is_not_desktop_chrome_stops_startup(tmp_path: Path) -> None:
    """The request headers are desktop Chrome's: a Firefox or Android fingerprint under them would be a mismatch."""
    for client, profile in [("tls-client", "firefox_120"), ("curl_cffi", "chrome131_android")]:
        result = run_cli(tmp_path, {"HTTP_CLIENT": client, "HTTP_IMPERSONATE": profile})
        assert result.returncode == 2
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("configuration error: HTTP_IMPERSONATE: the fetcher's request headers are desktop"
                               " Chrome's"), line


def test_the_user_agent_follows_the_profile_s_chrome_version() -> None:
    from fetcher.transport import BROWSER_HEADERS, browser_headers
    from shared.httpclients import chrome_version

    assert [chrome_version(p) for p in ("chrome_146", "chrome146", "chrome_116_PSK_PQ", "chrome133a",
                                        "firefox_120", "chrome131_android")] == [146, 146, 116, 133, None, None]
    headers = browser_headers("chrome_131")
    assert "Chrome/131.0.0.0 Safari/537.36" in headers["User-Agent"]
    assert {k: v for k, v in headers.items() if k != "User-Agent"} == {
        k: v for k, v in BROWSER_HEADERS.items() if k != "User-Agent"}


def test_an_sqlite_too_old_to_settle_tips_stops_startup_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")
    with pytest.raises(ValidationError, match="SQLite 3.35 or newer is needed and this Python has 3.34.1"):
        Settings(_env_file=None, database_url="sqlite:///x.db")
    assert Settings(_env_file=None, database_url="postgresql://u@127.0.0.1/db").database_url.startswith("postgresql")
