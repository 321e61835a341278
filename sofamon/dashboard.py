"""`sofamon dashboard`: rq-dashboard on the project's Redis, bound to 127.0.0.1 unless configured otherwise."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from shared.settings import Settings


def command(settings: Settings) -> list[str]:
    """rq-dashboard's command line: nothing secret on it, since `ps` shows it to every user of the machine."""
    beside = Path(sys.executable).parent / "rq-dashboard"  # supervisord's PATH need not include the venv
    program = str(beside) if beside.exists() else shutil.which("rq-dashboard") or "rq-dashboard"
    return [program, "--bind", settings.rq_dashboard_host, "--port", str(settings.rq_dashboard_port)]


def environment(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """rq-dashboard reads each option from RQ_DASHBOARD_<OPTION>: the Redis URL (it may hold a password)
    and the basic-auth pair go that way."""
    env = dict(base)
    env["RQ_DASHBOARD_REDIS_URL"] = settings.redis_url
    if settings.rq_dashboard_username and settings.rq_dashboard_password:
        env["RQ_DASHBOARD_USERNAME"] = settings.rq_dashboard_username
        env["RQ_DASHBOARD_PASSWORD"] = settings.rq_dashboard_password.get_secret_value()
    else:
        env.pop("RQ_DASHBOARD_USERNAME", None)
        env.pop("RQ_DASHBOARD_PASSWORD", None)
    return env


def run(settings: Settings) -> int:
    """Replaces this process."""
    argv = command(settings)
    os.execvpe(argv[0], argv, environment(settings, dict(os.environ)))
    return 0  # not reached
