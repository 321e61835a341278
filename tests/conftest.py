"""Shared test fixtures: real Redis (a db of its own), both databases, settings built per test.

Redis and PostgreSQL are the ones at the test addresses when they answer, else throwaway servers the
suite starts on first use and removes at the end (tests/servers.py). Tests that need neither start neither.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis

from shared.httpclients import HTTP_CLIENTS
from shared.settings import Settings
from shared.storage import Database
from tests import servers
from tests.ownredis import OwnRedis

# Decided once, when pytest loads this file: the URLs are fixed for the session (test modules import
# TEST_REDIS_URL), the servers behind them start when a test first needs them.
SERVERS = servers.session()
# Pipeline tests own this Redis db: it is flushed before and after each test that uses it.
TEST_REDIS_URL = SERVERS.redis.url
TEST_PG_URL = SERVERS.postgres.url


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(SERVERS.summary())


def pytest_unconfigure(config: pytest.Config) -> None:
    SERVERS.close()


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The test Redis, answering (ours started if need be)."""
    return SERVERS.redis.ensure()


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The test PostgreSQL database, answering (ours started if need be)."""
    return SERVERS.postgres.ensure()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No test reads the developer's .env or environment for project settings."""
    for name in list(os.environ):
        if name in Settings.model_fields or name.upper() in {f.upper() for f in Settings.model_fields}:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    conn = redis.Redis.from_url(TEST_REDIS_URL)
    conn.flushdb()
    yield TEST_REDIS_URL
    conn.flushdb()
    conn.close()


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    yield conn
    conn.close()


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/monitor.db"


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A schema of its own in the `test` database, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(TEST_PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{TEST_PG_URL}?options=-csearch_path%3D{schema}"
    with psycopg.connect(TEST_PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Storage tests run on both databases."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture(params=HTTP_CLIENTS)
def http_client(request: pytest.FixtureRequest) -> str:
    """Fetcher tests run with each HTTP client (HTTP_CLIENT) against the fake Sofascore."""
    return str(request.param)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.close()


@pytest.fixture
def make_settings(sqlite_url: str, redis_server: str) -> Callable[..., Settings]:
    """Settings for a test: its own Redis prefix and SQLite file unless overridden."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": TEST_REDIS_URL,
            "redis_prefix": prefix,
            "database_url": sqlite_url,
            "_env_file": None,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def migrated_settings(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Settings]]:
    """`make_settings`, and their database migrated (its connection closed after the test)."""
    dbs: list[Database] = []

    def make(**overrides: Any) -> Settings:
        settings = make_settings(**overrides)
        dbs.append(Database(settings.database_url))
        dbs[-1].migrate()
        return settings

    yield make
    for db in dbs:
        db.close()


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    """The migrated database of the test module's own `settings` fixture."""
    db = Database(settings.database_url)
    db.migrate()
    yield db
    db.close()


@pytest.fixture
def own_redis(tmp_path: Any) -> Iterator[Callable[[bool], OwnRedis]]:
    """redis-servers of the test's own, to restart or break under running processes; stopped afterwards."""
    started: list[OwnRedis] = []

    def make(persistent: bool) -> OwnRedis:
        server = OwnRedis(tmp_path / f"redis-{len(started)}", persistent)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
