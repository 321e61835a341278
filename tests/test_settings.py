"""Configuration: defaults, parsing, and bad values stopping startup with one clear line."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

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
     ("DISCORD_WEBHOOK_URL", "discord.com/api/webhooks/1/tok"), ("NOTIFIER_RETRY_INTERVALS", "5,soon")],
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
