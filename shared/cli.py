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
