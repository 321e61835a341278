"""`sofamon`: one command for every process and operator task."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from shared.settings import Settings, load_settings


def _fetch(settings: Settings, args: argparse.Namespace) -> int:
    from fetcher.main import run

    return run(settings, once=args.once)


def _process(settings: Settings, args: argparse.Namespace) -> int:
    from processor.main import run

    return run(settings, burst=args.burst)


def _notify(settings: Settings, args: argparse.Namespace) -> int:
    from notifier.main import run

    return run(settings, burst=args.burst)


def _init_db(settings: Settings, args: argparse.Namespace) -> int:
    from shared.storage import Database

    db = Database(settings.database_url)
    applied = db.migrate()
    print(f"database ready ({db.dialect}, {applied} migration(s) applied)")
    return 0


def _dashboard(settings: Settings, args: argparse.Namespace) -> int:
    """rq-dashboard on the project's Redis; the password goes through the environment, not `ps`."""
    import os
    import shutil

    env = dict(os.environ)
    command = [shutil.which("rq-dashboard") or "rq-dashboard", "--bind", settings.rq_dashboard_host,
               "--port", str(settings.rq_dashboard_port), "--redis-url", settings.redis_url]
    if settings.rq_dashboard_username and settings.rq_dashboard_password:
        env["RQ_DASHBOARD_USERNAME"] = settings.rq_dashboard_username
        env["RQ_DASHBOARD_PASSWORD"] = settings.rq_dashboard_password.get_secret_value()
    else:
        env.pop("RQ_DASHBOARD_USERNAME", None)
        env.pop("RQ_DASHBOARD_PASSWORD", None)
    os.execvpe(command[0], command, env)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sofamon", description="Discord alerts for Sofascore's top predictors")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="poll Sofascore and write what it fetched into Redis")
    fetch.add_argument("--once", action="store_true", help="run one full fetch cycle and exit")
    fetch.set_defaults(handler=_fetch)
    process = sub.add_parser("process", help="turn fetched data into alerts")
    process.add_argument("--burst", action="store_true", help="handle every pending stream entry and exit")
    process.set_defaults(handler=_process)
    notify = sub.add_parser("notify", help="deliver alerts to Discord")
    notify.add_argument("--burst", action="store_true", help="deliver every queued alert and exit")
    notify.set_defaults(handler=_notify)
    init_db = sub.add_parser("init-db", help="create or migrate the database")
    init_db.set_defaults(handler=_init_db)
    dashboard = sub.add_parser("dashboard", help="run rq-dashboard on 127.0.0.1 for this project's Redis")
    dashboard.set_defaults(handler=_dashboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        return handler(settings, args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
