"""`sofamon dashboard`: rq-dashboard on the project's Redis, bound to 127.0.0.1 unless configured otherwise."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from shared import sentinelurl
from shared.settings import Settings

# Read by rq-dashboard (`--config`) when REDIS_URL is a Sentinel URL: the passwords of that URL.
SENTINEL_CONFIG = "sofamon.dashboardconfig"


def command(settings: Settings) -> list[str]:
    """rq-dashboard's command line: nothing secret on it, since `ps` shows it to every user of the machine."""
    beside = Path(sys.executable).parent / "rq-dashboard"  # supervisord's PATH need not include the venv
    program = str(beside) if beside.exists() else shutil.which("rq-dashboard") or "rq-dashboard"
    argv = [program, "--bind", settings.rq_dashboard_host, "--port", str(settings.rq_dashboard_port)]
    return argv + (["--config", SENTINEL_CONFIG] if sentinelurl.is_sentinel(settings.redis_url) else [])


def unsupported(settings: Settings) -> str | None:
    """Why rq-dashboard cannot reach REDIS_URL's Redis, if it cannot: through Sentinel it reads the URL with the
    Redis-Sentinel-Url package, which knows neither TLS, nor user names, nor IPv6 addresses."""
    if not sentinelurl.is_sentinel(settings.redis_url):
        return None
    url = sentinelurl.parse(settings.redis_url)
    lacks = [what for what, used in (("TLS (rediss+sentinel://)", url.tls),
                                     ("a user name", url.username or url.sentinel_username),
                                     ("IPv6 addresses", any(":" in host for host, _ in url.sentinels))) if used]
    if not lacks:
        return None
    return (f"rq-dashboard cannot reach Redis through Sentinel with {' or '.join(lacks)} (it reads Sentinel URLs"
            " with the Redis-Sentinel-Url package); the other programs are not concerned")


def environment(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """rq-dashboard reads each option from RQ_DASHBOARD_<OPTION>: the Redis URL (it may hold a password)
    and the basic-auth pair go that way. A Sentinel URL goes without its passwords (SENTINEL_CONFIG gives
    them) nor options, in the form rq-dashboard reads: redis+sentinel://host:port,host:port/service/db."""
    env = dict(base)
    env["RQ_DASHBOARD_REDIS_URL"] = settings.redis_url
    if sentinelurl.is_sentinel(settings.redis_url):
        env["RQ_DASHBOARD_REDIS_URL"] = sentinelurl.parse(settings.redis_url).without_credentials()
    if settings.rq_dashboard_username and settings.rq_dashboard_password:
        env["RQ_DASHBOARD_USERNAME"] = settings.rq_dashboard_username
        env["RQ_DASHBOARD_PASSWORD"] = settings.rq_dashboard_password.get_secret_value()
    else:
        env.pop("RQ_DASHBOARD_USERNAME", None)
        env.pop("RQ_DASHBOARD_PASSWORD", None)
    return env


def run(settings: Settings) -> int:
    """Replaces this process (exit status 2 and one line when rq-dashboard cannot reach REDIS_URL's Redis)."""
    if reason := unsupported(settings):
        print(f"sofamon dashboard: {reason}", file=sys.stderr)
        return 2
    argv = command(settings)
    os.execvpe(argv[0], argv, environment(settings, dict(os.environ)))
    return 0  # not reached
