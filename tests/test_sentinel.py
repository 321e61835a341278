"""REDIS_URL through Redis Sentinel (`redis+sentinel://`): the URL read and refused, secrets kept out of what is
printed, every process reaching the master through the Sentinels, and a failover under running processes
ridden out like a Redis restart: one line, then the new master, nothing lost.

The servers are real and the test's own (tests/ownsentinel.py): a master, a replica and a Sentinel with
passwords; the URL also lists a Sentinel that is not there, which clients skip.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from shared import sentinelurl
from shared.logs import RedactingFilter, redact, safe_url
from shared.settings import Settings, describe_errors


# -- the URL (no server) -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "expected"), [
    ("redis+sentinel://h1:26379,h2:26379/mymaster/0",
     {"sentinels": (("h1", 26379), ("h2", 26379)), "service": "mymaster", "db": 0, "tls": False}),
    ("redis+sentinel://h1,10.0.0.2:5000/mymaster",
     {"sentinels": (("h1", 26379), ("10.0.0.2", 5000)), "db": 0}),
    ("redis+sentinel://:pw@h1/cache/3?sentinel_password=spw",
     {"password": "pw", "username": None, "sentinel_password": "spw", "db": 3, "service": "cache"}),
    ("redis+sentinel://app:p%40ss@[::1]:5000/m/1?sentinel_username=watch&sentinel_password=s",
     {"username": "app", "password": "p@ss", "sentinels": (("::1", 5000),), "sentinel_username": "watch"}),
    ("rediss+sentinel://h1/m/0?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem",
     {"tls": True, "ssl": {"ssl_cert_reqs": "none", "ssl_ca_certs": "/etc/ca.pem"}}),
])
def test_sentinel_urls_are_read(url: str, expected: dict[str, object]) -> None:
    parsed = sentinelurl.parse(Settings(_env_file=None, redis_url=url).redis_url)
    for name, value in expected.items():
        assert getattr(parsed, name) == value, name


def test_connection_arguments_keep_the_two_passwords_apart() -> None:
    parsed = sentinelurl.parse("rediss+sentinel://app:pw@h1/m/2?sentinel_password=spw&ssl_cert_reqs=none")
    assert parsed.master_kwargs() == {"db": 2, "username": "app", "password": "pw", "ssl": True,
                                      "ssl_cert_reqs": "none"}
    assert parsed.sentinel_kwargs() == {"username": None, "password": "spw", "ssl": True, "ssl_cert_reqs": "none"}
    assert parsed.without_credentials() == "rediss+sentinel://h1:26379/m/2"


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel:///mymaster/0", "no Sentinel host"),
    ("redis+sentinel://:pw-SECRET@/mymaster/0", "no Sentinel host"),
    ("redis+sentinel://h1:26379,,h2:26379/mymaster/0", "without a host"),
    ("redis+sentinel://h1:26379,:26380/mymaster/0", "without a host"),
    ("redis+sentinel://:pw-SECRET@h1:26379", "names no service"),
    ("redis+sentinel://h1:26379/", "names no service"),
    ("redis+sentinel://h1:26379//0", "names no service"),
    ("redis+sentinel://h1:abc/mymaster", "port"),
    ("redis+sentinel://h1:26379,h2:0/mymaster", "port"),
    ("redis+sentinel://h1:70000/mymaster", "port"),
    ("redis+sentinel://h1/mymaster/zero", "db"),
    ("redis+sentinel://h1/mymaster/0/extra", "path"),
    ("redis+sentinel://h1/mymaster/0?password=pw-SECRET", "option password"),
    ("redis+sentinel://h1/mymaster/0?pw-SECRET", "option that"),
    ("redis+sentinel://h1/m/0?sentinel_password=a&sentinel_password=pw-SECRET", "twice"),
    ("redis+sentinel://h1/mymaster/0?ssl_cert_reqs=none", "rediss+sentinel"),
    ("rediss+sentinel://h1/mymaster/0?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
    ("sentinel://:pw-SECRET@h1/mymaster", "redis+sentinel://"),
])
def test_invalid_sentinel_urls_are_refused_naming_redis_url(url: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None, redis_url=url)
    [line] = describe_errors(error.value)
    assert line.startswith("REDIS_URL: ") and says in line, line
    assert "SECRET" not in line


@pytest.mark.parametrize("url", ["redis+sentinel://h1:26379", "redis+sentinel://:pw-SECRET@h1:x/mymaster/0"])
def test_an_invalid_sentinel_url_stops_startup_with_one_line(url: str, tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "REDIS_URL": url}
    result = subprocess.run([sys.executable, "-m", "sofamon.cli", "status"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "REDIS_URL" in line and "SECRET" not in line and "Traceback" not in result.stderr


def test_passwords_of_a_sentinel_url_are_never_printed() -> None:
    url = "redis+sentinel://app:redis-pw-SECRET@h1:26379,h2:26379/mymaster/0?sentinel_password=sent-pw-SECRET"
    settings = Settings(_env_file=None, redis_url=url)
    assert safe_url(url) == "redis+sentinel://h1:26379,h2:26379/mymaster/0"
    assert {"redis-pw-SECRET", "sent-pw-SECRET"} <= set(settings.secrets())
    # Free text: masked by its shape, even without the configured secrets...
    assert "SECRET" not in redact(f"connecting to {url} failed", [])
    # ...and the passwords alone, wherever a library prints them, by the log filter.
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "AUTH with %s / %s", ("redis-pw-SECRET",
                               "sent-pw-SECRET"), None)
    RedactingFilter(settings.secrets()).filter(record)
    assert "SECRET" not in record.getMessage()


def test_sentinel_settings_named_otherwise_point_at_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.settings import unknown_names

    lines_ = unknown_names({"REDIS_SENTINELS": "h1:26379", "REDIS_SENTINEL_MASTER": "mymaster"}, None)
    assert len(lines_) == 2 and all("redis+sentinel://" in line for line in lines_)
