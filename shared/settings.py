"""One settings object, read from the environment and `.env`, passed to whatever needs it."""
from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared import sentinelurl
from shared.httpclients import DEFAULT_PROFILE, HTTP_CLIENTS, TLS_CLIENT, chrome_version, profiles

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The path of a Discord webhook URL, with or without an API version (`/api/v10/webhooks/...`).
_WEBHOOK_PATH = re.compile(r"/api(?:/v\d+)?/webhooks/\d+/[\w-]+/?")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")  # HH:MM, 24-hour
_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")  # an environment variable's name, upper-cased
SQLITE_MIN = (3, 35)


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
    # The scorecard: figures from fewer settled tips than this are shown but marked too few to judge.
    scorecard_min_settled: int = Field(30, ge=1)
    # Consensus alerts: this many monitored predictors on the same pick of a match (0: none).
    consensus_min_predictors: int = Field(3, ge=0)
    # The daily digest (processor/digest.py): sent from this local time (POLL_TIMEZONE) on; None: never.
    digest_time: time | None = None
    # Odds cadence by time to kick-off (fetcher/cadence.py): polled rarely while prices barely move.
    odds_slow_beyond_hours: float = Field(12.0, ge=0)
    odds_slow_every_minutes: float = Field(120.0, ge=0)
    odds_mid_every_minutes: float = Field(30.0, ge=0)
    odds_every_cycle_within_hours: float = Field(2.0, ge=0)
    odds_closing_within_minutes: float = Field(10.0, ge=0)
    http_concurrency: int = Field(5, ge=1, le=50)
    # Requests to Sofascore in any 60 s at most, all kinds together; 0 = no limit.
    upstream_max_requests_per_minute: int = Field(60, ge=0)
    # Whose requests that budget counts when several fetchers share the work: all of them, or those of one host.
    upstream_budget_scope: Literal["global", "host"] = "global"
    # Pages of one predictor's tips read at most per poll (a poll stops earlier at a page with nothing new).
    prediction_max_pages: int = Field(5, ge=1, le=100)
    http_timeout_seconds: float = Field(20.0, gt=0)
    proxy_url: SecretStr | None = None
    # The library that talks to Sofascore, and the browser it passes for (unset: `browser_profile`).
    http_client: str = TLS_CLIENT
    http_impersonate: str | None = None  # checked against HTTP_CLIENT's library
    leaderboard_refresh_minutes: float = Field(30.0, gt=0)
    stream_retention_days: float = Field(7.0, gt=0)
    log_level: str = "INFO"
    # An entry the processor keeps failing on (while the database answers) is dead-lettered after this many deliveries.
    processor_max_deliveries: int = Field(10, ge=1)
    # Notifier timings; the defaults suit production, tests shorten them.
    notifier_lease_seconds: float = Field(60.0, gt=0)
    notifier_retry_intervals: Annotated[list[int], NoDecode] = [5, 15, 60, 180, 600]
    notifier_sweep_seconds: float = Field(30.0, gt=0)
    notifier_heartbeat_seconds: float = Field(30.0, gt=0)
    notifier_lock_ttl: float = Field(30.0, gt=0)
    notifier_http_timeout: float = Field(10.0, gt=0)
    notifier_health_throttle_seconds: int = Field(900, ge=0)
    # A delivery job that sent its webhook's backlog waits this long for the webhook's next alerts, handed to it
    # without an RQ job each (notifier/lingering.py); 0: it ends at once. Foreground notifiers only.
    notifier_linger_seconds: float = Field(20.0, ge=0)
    # rq-dashboard: loopback only unless the operator says otherwise; basic auth when both are set.
    rq_dashboard_host: str = "127.0.0.1"
    rq_dashboard_port: int = Field(9181, ge=1, le=65535)
    rq_dashboard_username: str | None = None
    rq_dashboard_password: SecretStr | None = Field(None, validate_default=True)  # checked with the username

    @field_validator("target_users", "notifier_retry_intervals", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("notifier_retry_intervals")
    @classmethod
    def _no_negative_wait(cls, value: list[int]) -> list[int]:
        if any(seconds < 0 for seconds in value):
            raise ValueError("must be 0 or more seconds each")
        return value

    @field_validator("line_movement_threshold")
    @classmethod
    def _a_fraction(cls, value: float) -> float:
        # 15 meant as 15 % would need the price to move by 1,500 %: it could never alert.
        if value >= 1:
            raise ValueError("must be below 1: it is a fraction (0.15 means 15 %)")
        return value

    @field_validator("poll_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("digest_time", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> Any:
        # `HH:MM` only: pydantic's own time parsing takes seconds, fractions and offsets, none meant here.
        if value is None or isinstance(value, time):
            return value
        if isinstance(value, str):
            if not value.strip():
                return None
            if match := _CLOCK.fullmatch(value.strip()):
                return time(int(match[1]), int(match[2]))
        raise ValueError("must be a time of day as HH:MM, 24-hour (09:00, 21:30), or empty for no digest")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in LOG_LEVELS:
            return value.upper()
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")

    @field_validator("http_client", mode="before")
    @classmethod
    def _known_client(cls, value: Any) -> Any:
        # `curl-cffi` (pip's spelling) and `tls_client` (Python's) name the same libraries.
        spellings = {name.replace("_", "-"): name for name in HTTP_CLIENTS}
        if isinstance(value, str) and (name := spellings.get(value.strip().lower().replace("_", "-"))):
            return name
        raise ValueError(f"must be one of {', '.join(HTTP_CLIENTS)}")

    @field_validator("http_impersonate")
    @classmethod
    def _known_profile(cls, value: str | None, info: ValidationInfo) -> str | None:
        # tls-client silently falls back to its default profile for a name it does not know: say so at startup.
        client = info.data.get("http_client")
        if value is None or client is None:  # unset, or HTTP_CLIENT is wrong (its own line says so)
            return value
        known = profiles(client)
        if value not in known:
            close = difflib.get_close_matches(value, known, n=1)
            hint = f"did you mean {close[0]}?" if close else f"{client}'s Chrome 146 is {DEFAULT_PROFILE[client]}"
            raise ValueError(f"not a browser profile {client} knows; {hint}")
        if chrome_version(value) is None:
            raise ValueError(f"the fetcher's request headers are desktop Chrome's: choose a desktop Chrome profile"
                             f" ({client}'s Chrome 146 is {DEFAULT_PROFILE[client]})")
        return value

    @field_validator("consensus_min_predictors")
    @classmethod
    def _consensus_of_several(cls, value: int) -> int:
        if value == 1:
            raise ValueError("must be 0 (no consensus alerts) or at least 2: one predictor is not a consensus")
        return value

    @field_validator("database_url")
    @classmethod
    def _db_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        if not value.startswith("sqlite:"):
            _check_url(value, ("postgresql", "postgres"))
        elif _sqlite_version() < SQLITE_MIN:
            # Settling tips returns what it settled (UPDATE ... RETURNING, SQLite 3.35, 2021).
            raise ValueError(f"SQLite {'.'.join(map(str, SQLITE_MIN))} or newer is needed and this Python has"
                             f" {'.'.join(map(str, _sqlite_version()))}: use a newer Python build or PostgreSQL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if value.startswith("unix://"):
            return value
        if sentinelurl.is_sentinel(value):
            sentinelurl.parse(value)  # its ValueError says what is wrong
            return value
        try:
            _check_url(value, ("redis", "rediss"))
        except ValueError as error:
            if "must be a" not in str(error):
                raise
            raise ValueError("must be a redis://, rediss://, unix://, redis+sentinel:// or rediss+sentinel:// URL")\
                from None
        return value

    @field_validator("sofascore_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        _check_url(value, ("http", "https"))
        return value.rstrip("/")

    @field_validator("discord_webhook_url", "discord_health_webhook_url", "proxy_url")
    @classmethod
    def _secret_url(cls, value: SecretStr | None, info: Any) -> SecretStr | None:
        if value is None:
            return value
        if info.field_name == "proxy_url":
            _check_url(value.get_secret_value(), ("http", "https", "socks5", "socks5h"))
            return value
        _check_url(value.get_secret_value(), ("http", "https"))
        # Any other page of Discord's (a channel link, a half-copied URL) would only fail at the first alert.
        if not _WEBHOOK_PATH.fullmatch(urlsplit(value.get_secret_value()).path):
            raise ValueError("is not a Discord webhook URL (https://discord.com/api/webhooks/<id>/<token>)")
        return value

    @field_validator("discord_webhook_url", "discord_health_webhook_url", "proxy_url", "rq_dashboard_username",
                     "rq_dashboard_password", "http_impersonate", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rq_dashboard_password")
    @classmethod
    def _dashboard_auth_pair(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # One of the two alone would leave the dashboard open while the operator believes it is protected.
        # A field validator (not a model one), so this is listed along with the other fields' errors.
        username = info.data.get("rq_dashboard_username")
        if value is None and username is not None:
            raise ValueError("not set although RQ_DASHBOARD_USERNAME is: basic auth needs both, or neither")
        if value is not None and username is None and "rq_dashboard_username" in info.data:
            raise ValueError("set without RQ_DASHBOARD_USERNAME: basic auth needs both, or neither")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.poll_timezone)

    @property
    def browser_profile(self) -> str:
        """HTTP_IMPERSONATE, else the chosen library's Chrome 146: the browser the fetcher's headers describe."""
        return self.http_impersonate or DEFAULT_PROFILE[self.http_client]

    def secrets(self) -> list[str]:
        """Every configured secret, so the log filter can mask it wherever it shows up."""
        values = [s.get_secret_value() for s in (self.discord_webhook_url, self.discord_health_webhook_url, self.proxy_url,
                                                self.rq_dashboard_password) if s]
        # The services' passwords on their own; their URLs stay readable (the log filter masks any userinfo).
        passwords = [_password(self.redis_url), _password(self.database_url)]
        if sentinelurl.is_sentinel(self.redis_url):
            sentinel = sentinelurl.parse(self.redis_url)
            passwords = [sentinel.password, sentinel.sentinel_password, _password(self.database_url)]
        # Masking a very short password everywhere would garble the logs more than it protects.
        values += [password for password in passwords if password and len(password) >= 4]
        return [v for v in values if v]


def _sqlite_version() -> tuple[int, ...]:
    import sqlite3  # here: the fetcher, which has no database, does not load it

    return sqlite3.sqlite_version_info


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


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


def describe_errors(error: ValidationError) -> list[str]:
    """One line per bad value naming the setting, never echoing the value (it may be a secret)."""
    lines: list[str] = []
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        line = f"{str(item['loc'][0]).upper()}: {message}" if item["loc"] else message  # no loc: names are in msg
        if line not in lines:  # e.g. two bad items of one list
            lines.append(line)
    return lines


# Names with one of the settings' prefixes that other programs read from the environment we pass on.
USED_BY_OTHERS = frozenset({
    "HTTP_PROXY",  # requests (the notifier's Discord client); the fetcher takes PROXY_URL only
    "TIME_STYLE",  # GNU ls
    # rq-dashboard's own options (`sofamon dashboard` passes the environment on); host, port, auth and the
    # Redis URL come from our settings.
    "RQ_DASHBOARD_URL_PREFIX", "RQ_DASHBOARD_POLL_INTERVAL", "RQ_DASHBOARD_DISABLE_DELETE",
    "RQ_DASHBOARD_SHOW_FULL_ARGS", "RQ_DASHBOARD_SETTINGS",
})
# What people write for a setting that has another shape here; difflib would not find it.
_MEANT = {
    **{f"REDIS_{part}": "REDIS_URL (redis://:password@host:port/db)"
       for part in ("HOST", "PORT", "PASSWORD", "DB", "USERNAME")},
    **{f"REDIS_{part}": "REDIS_URL (redis+sentinel://:password@host1:26379,host2:26379/mymaster/0)"
       for part in ("SENTINELS", "SENTINEL", "SENTINEL_MASTER", "SENTINEL_PASSWORD", "MASTER_NAME", "SERVICE_NAME")},
    **{f"DATABASE_{part}": "DATABASE_URL (postgresql://user:password@host/db)"
       for part in ("HOST", "PORT", "PASSWORD", "NAME", "USER")},
    "RQ_DASHBOARD_REDIS_URL": "REDIS_URL (the dashboard uses the project's Redis)",
    "RQ_DASHBOARD_BIND": "RQ_DASHBOARD_HOST",
}


def setting_names() -> list[str]:
    return [name.upper() for name in Settings.model_fields]


def settings_prefixes() -> list[str]:
    """The first word of each setting: an environment variable starting with one is meant for us."""
    prefixes = set()
    for name in setting_names():
        words = name.split("_")
        # RQ_ alone would take in rq's own variables (RQ_REDIS_URL for the `rq` command): ours are RQ_DASHBOARD_*.
        prefixes.add("_".join(words[: 2 if words[0] == "RQ" else 1]) + "_")
    return sorted(prefixes)


def unknown_names(environ: Mapping[str, str], env_file: str | Path | None) -> list[str]:
    """A line for each name that looks meant for the settings but is none: pydantic ignores those,
    so a typo would silently leave a default in force (DISCORD_WEBHOK_URL: the whole system runs dry).
    Every name in `.env` is checked; in the environment, the names with one of our prefixes."""
    known = set(setting_names())
    suspects: list[tuple[str, str]] = []
    if env_file is not None and Path(env_file).is_file():
        suspects += [(name.upper(), ".env") for name in dotenv_values(env_file)]
    prefixes = tuple(settings_prefixes())
    suspects += [(name.upper(), "environment") for name in environ
                 if name.upper().startswith(prefixes) and name.upper() not in USED_BY_OTHERS]
    lines = []
    for name, where in suspects:
        if name in known:
            continue
        if not _NAME.fullmatch(name):
            # Not NAME=value: perhaps a token pasted on a line of its own, so it is not shown.
            lines.append(f"{where} has a line that is not NAME=value (not shown: it may hold a secret)")
            continue
        meant = _MEANT.get(name) or next(iter(difflib.get_close_matches(name, known, n=1, cutoff=0.6)), None)
        hint = f"did you mean {meant}?" if meant else "see the configuration table in README.md"
        lines.append(f"{name} ({where}) is not a setting; {hint}")
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Settings for a command. Unknown names and bad values end the process with exit status 2 and one
    line each, every one of them listed (a fix-restart round per mistake would be tedious)."""
    errors = unknown_names(os.environ, overrides.get("_env_file", Settings.model_config.get("env_file")))
    settings = None
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        errors += describe_errors(error)
    if settings is None or errors:
        for line in errors:
            print(f"configuration error: {line}", file=sys.stderr)
        raise SystemExit(2)
    return settings
