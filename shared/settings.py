"""One settings object, read from the environment and `.env`, passed to whatever needs it."""
from __future__ import annotations

import sys
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", allow_inf_nan=False)

    sofascore_base_url: str = "https://www.sofascore.com/api/v1"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every key the project writes starts with this, so tests and several installs can share one Redis.
    redis_prefix: str = Field("sofamon", min_length=1)
    database_url: str = "sqlite:///data/sofascore_monitor.db"
    discord_webhook_url: SecretStr | None = None
    discord_health_webhook_url: SecretStr | None = None
    # Discord limits each channel to about 30 messages a minute without announcing it in headers.
    discord_messages_per_minute: int = Field(30, ge=1)
    top_predictors_limit: int = Field(10, ge=0)
    min_roi: float = 0.0
    min_avg_odds: float = Field(1.5, ge=0)
    min_total_bets: int = Field(0, ge=0)
    min_win_rate: float = Field(0.0, ge=0, le=100)
    target_users: Annotated[list[str], NoDecode] = []
    scan_interval_minutes: float = Field(5.0, gt=0)
    poll_timezone: str = "Europe/London"
    time_lookahead_hours: float = Field(24.0, ge=0)
    match_grace_period_minutes: float = Field(5.0, ge=0)
    line_movement_threshold: float = Field(0.15, gt=0)
    http_concurrency: int = Field(5, ge=1, le=50)
    # Pages of one predictor's tips read at most per poll (a poll stops earlier at a page with nothing new).
    prediction_max_pages: int = Field(5, ge=1, le=100)
    http_timeout_seconds: float = Field(20.0, gt=0)
    proxy_url: SecretStr | None = None
    leaderboard_refresh_minutes: float = Field(30.0, gt=0)
    stream_retention_days: float = Field(7.0, gt=0)
    log_level: str = "INFO"
    # Notifier timings; the defaults suit production, tests shorten them.
    notifier_lease_seconds: float = Field(60.0, gt=0)
    notifier_retry_intervals: Annotated[list[int], NoDecode] = [5, 15, 60, 180, 600]
    notifier_sweep_seconds: float = Field(30.0, gt=0)
    notifier_heartbeat_seconds: float = Field(30.0, gt=0)
    notifier_lock_ttl: float = Field(30.0, gt=0)
    notifier_http_timeout: float = Field(10.0, gt=0)
    notifier_health_throttle_seconds: int = Field(900, ge=0)
    # rq-dashboard: loopback only unless the operator says otherwise; basic auth when both are set.
    rq_dashboard_host: str = "127.0.0.1"
    rq_dashboard_port: int = Field(9181, ge=1, le=65535)
    rq_dashboard_username: str | None = None
    rq_dashboard_password: SecretStr | None = None

    @field_validator("target_users", "notifier_retry_intervals", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("poll_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in LOG_LEVELS:
            return value.upper()
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")

    @field_validator("database_url")
    @classmethod
    def _db_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        if not value.startswith("sqlite:"):
            _check_url(value, ("postgresql", "postgres"))
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value.startswith("unix://"):
            return value
        _check_url(value, ("redis", "rediss"))
        return value

    @field_validator("sofascore_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        _check_url(value, ("http", "https"))
        return value.rstrip("/")

    @field_validator("discord_webhook_url", "discord_health_webhook_url", "proxy_url")
    @classmethod
    def _secret_url(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        if value is not None:
            schemes = ("http", "https", "socks5", "socks5h") if info.field_name == "proxy_url" else ("http", "https")
            _check_url(value.get_secret_value(), schemes)
        return value

    @field_validator("discord_webhook_url", "discord_health_webhook_url", "proxy_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.poll_timezone)

    def secrets(self) -> list[str]:
        """Every configured secret, so the log filter can mask it wherever it shows up."""
        values = [s.get_secret_value() for s in (self.discord_webhook_url, self.discord_health_webhook_url, self.proxy_url,
                                                self.rq_dashboard_password) if s]
        return [v for v in values if v]


def _check_url(value: str, schemes: tuple[str, ...]) -> None:
    """A URL with one of the schemes, a host and, if any, a numeric port; the message never echoes it."""
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a non-numeric port
    except ValueError:
        raise ValueError("is not a valid URL (check the port)") from None
    if url.scheme not in schemes:
        raise ValueError(f"must be a {' or '.join(s + '://' for s in schemes)} URL")
    if not url.hostname:
        raise ValueError("has no host")


def describe_error(error: ValidationError) -> str:
    """One line naming the setting, never echoing its value (it may be a secret)."""
    first = error.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "settings"
    message = first["msg"].removeprefix("Value error, ")
    more = len(error.errors()) - 1
    return f"configuration error: {name}: {message}" + (f" (and {more} more)" if more else "")


def load_settings(**overrides: Any) -> Settings:
    """Settings for a command: a bad value ends the process with one line and exit status 2."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        print(describe_error(error), file=sys.stderr)
        raise SystemExit(2) from None
