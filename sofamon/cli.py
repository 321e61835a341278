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
    from sofamon.dashboard import run

    return run(settings)


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from sofamon.status import run

    return run(settings, as_json=args.json)


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from processor.replay import DEFAULT_KINDS, Selection, parse_when, run, stream_id

    try:
        now = time.time()
        selection = Selection(
            first=stream_id(args.start) if args.start else "-",
            last=stream_id(args.end) if args.end else "+",
            since=parse_when(args.since, now, settings.tz) if args.since else None,
            until=parse_when(args.until, now, settings.tz) if args.until else None,
            predictors=frozenset(args.predictor or ()),
            kinds=frozenset(args.kind) if args.kind else DEFAULT_KINDS,
        )
    except ValueError as error:
        print(f"sofamon replay: {error}", file=sys.stderr)
        return 2
    return run(settings, selection, dry=args.dry_run)


def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from processor.deadletters import run

    return run(settings, args.retry, args.retry_all, args.json)


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
    status = sub.add_parser("status", help="is it working? processes, fetcher, streams, queue, alerts, database",
                            description="Exit status 0 when healthy, 1 when not (the problems are listed).")
    status.add_argument("--json", action="store_true", help="the same report as one JSON object")
    status.set_defaults(handler=_status)
    replay = sub.add_parser(
        "replay", help="run stored stream entries through the processor again (--dry-run first)",
        description="Choose entries of the fetched stream and either show what alerts they produce on an empty"
                    " scratch database (--dry-run: changes nothing) or re-inject copies for the processor.")
    replay.add_argument("--from", dest="start", metavar="ID", help="first stream id (inclusive)")
    replay.add_argument("--to", dest="end", metavar="ID", help="last stream id (inclusive)")
    replay.add_argument("--since", metavar="WHEN",
                        help="fetched at or after: 2h, 30m, 1d ago, or 2026-11-22T10:00 (POLL_TIMEZONE)")
    replay.add_argument("--until", metavar="WHEN", help="fetched at or before (same forms as --since)")
    replay.add_argument("--predictor", action="append", metavar="ID",
                        help="only this predictor's predictions (plus leaderboard, odds and event entries);"
                             " repeatable")
    replay.add_argument("--kind", action="append", choices=("leaderboard", "predictions", "odds", "event", "health"),
                        help="kinds of entries to take; repeatable (default: leaderboard, predictions, odds, event)")
    replay.add_argument("--dry-run", action="store_true",
                        help="print the alerts the entries would produce, on a scratch database; send nothing")
    replay.set_defaults(handler=_replay)
    dead = sub.add_parser("dead-letters", help="list entries the processor could not use; retry them")
    retry = dead.add_mutually_exclusive_group()
    retry.add_argument("--retry", nargs="+", metavar="ID", help="re-inject these dead letters and delete them")
    retry.add_argument("--retry-all", action="store_true", help="re-inject every dead letter")
    dead.add_argument("--json", action="store_true", help="output as JSON")
    dead.set_defaults(handler=_dead_letters)
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
