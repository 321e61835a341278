"""`sofamon`: one command for every process and operator task."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

from shared.logs import error_line, safe_url
from shared.redisconn import REDIS_ERRORS
from shared.settings import Settings, load_settings
from shared.webhooks import WEBHOOKS

PACKAGE = "sofascore-monitor"


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
    try:
        applied = db.migrate()
    except OSError as error:  # SQLite: the file's directory cannot be created or written
        print(f"sofamon init-db: database {safe_url(settings.database_url)} unavailable: {error_line(error)}",
              file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"database ready ({db.dialect}, {applied} migration(s) applied)")
    return 0


def _dashboard(settings: Settings, args: argparse.Namespace) -> int:
    from sofamon.dashboard import run

    return run(settings)


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from sofamon.status import run

    return run(settings, as_json=args.json)


def _confirm(question: str) -> bool:
    """Ask on the terminal (the question on stderr, so stdout stays the command's output); yes only on y/yes."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


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
    confirm = None
    if selection.whole_stream and not args.dry_run and not args.yes:
        # Without a selection the whole stream would be re-injected: only on purpose.
        if not sys.stdin.isatty():
            print("sofamon replay: no selection would re-inject the whole stream: choose entries (--since, --from,"
                  " --predictor, --kind, ...) or add --yes", file=sys.stderr)
            return 2
        confirm = _confirm
    return run(settings, selection, dry=args.dry_run, confirm=confirm)


def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from processor.deadletters import run, show

    if args.show:
        return show(settings, args.show, args.json)
    return run(settings, args.retry, args.retry_all, args.json)


def _requeue(settings: Settings, args: argparse.Namespace) -> int:
    from sofamon.requeue import run

    return run(settings, args.alert)


def _alerts(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from processor.replay import parse_when
    from sofamon.alertlist import Filters, run

    try:
        now = time.time()
        filters = Filters(
            since=parse_when(args.since, now, settings.tz) if args.since else None,
            until=parse_when(args.until, now, settings.tz) if args.until else None,
            states=tuple(args.state or ()), kinds=tuple(args.kind or ()), predictors=tuple(args.predictor or ()),
            limit=args.limit,
        )
    except ValueError as error:
        print(f"sofamon alerts: {error}", file=sys.stderr)
        return 2
    return run(settings, filters, json_output=args.json)


def _report(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from processor.replay import parse_when
    from sofamon.report import run

    now = time.time()
    try:
        since = parse_when(args.since, now, settings.tz)
    except ValueError as error:
        print(f"sofamon report: {error}", file=sys.stderr)
        return 2
    return run(settings, since, now, args.since, args.predictor, json_output=args.json)


def _test_webhook(settings: Settings, args: argparse.Namespace) -> int:
    from sofamon.testwebhook import run

    return run(settings, args.webhook)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from sofamon import alertlist

    parser = argparse.ArgumentParser(prog="sofamon", description="Discord alerts for Sofascore's top predictors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
    replay.add_argument("--yes", action="store_true",
                        help="re-inject the whole stream without asking (when no entries are chosen)")
    replay.set_defaults(handler=_replay)
    dead = sub.add_parser("dead-letters", help="list entries the processor could not use; show or retry them")
    retry = dead.add_mutually_exclusive_group()
    retry.add_argument("--show", metavar="ID", help="print one dead letter with its stored payload")
    retry.add_argument("--retry", nargs="+", metavar="ID", help="re-inject these dead letters and delete them")
    retry.add_argument("--retry-all", action="store_true", help="re-inject every dead letter")
    dead.add_argument("--json", action="store_true", help="output as JSON")
    dead.set_defaults(handler=_dead_letters)
    requeue = sub.add_parser("requeue", help="give failed delivery jobs another go (REDIS_URL's Redis and db)",
                             description="Put the delivery jobs that failed every retry back on queue `alerts`,"
                                         " each with its retries again; a running notifier delivers them.")
    requeue.add_argument("--alert", type=int, metavar="ID", help="only the job of this alert")
    requeue.set_defaults(handler=_requeue)
    alerts = sub.add_parser("alerts", help="recent alerts: kind, predictor, match, state, times",
                            description="The newest alerts of the outbox, newest first; filters combine.")
    alerts.add_argument("--since", metavar="WHEN", help="created at or after: 2h, 30m, 1d ago, or 2026-11-22T10:00")
    alerts.add_argument("--until", metavar="WHEN", help="created at or before (same forms as --since)")
    alerts.add_argument("--state", action="append", choices=alertlist.STATES,
                        help="only alerts in this state; repeatable")
    alerts.add_argument("--kind", action="append", choices=alertlist.KINDS,
                        help="only alerts of this kind; repeatable")
    alerts.add_argument("--predictor", action="append", metavar="ID_OR_NICKNAME",
                        help="only this predictor's alerts (id, or nickname in any case); repeatable")
    alerts.add_argument("--limit", type=_positive, default=20, metavar="N", help="show at most N (default 20)")
    alerts.add_argument("--json", action="store_true", help="output as JSON (times in ISO 8601, UTC)")
    alerts.set_defaults(handler=_alerts)
    report = sub.add_parser("report", help="each predictor's record over our alerted tips: settled, ROI, CLV",
                            description="Per predictor, over the tips alerted in the window: alerted, settled (won,"
                                        " lost, void), ROI at flat stakes, closing-line value and how often the tip"
                                        " beat the closing price; best CLV first.")
    report.add_argument("--since", metavar="WHEN", default="30d",
                        help="alerted at or after: 30d (the default), 12h, or 2026-11-01T00:00")
    report.add_argument("--predictor", metavar="ID_OR_NICKNAME", help="only this predictor (id, or nickname)")
    report.add_argument("--json", action="store_true", help="output as JSON (figures unrounded)")
    report.set_defaults(handler=_report)
    test_webhook = sub.add_parser("test-webhook", help="post a harmless test message to each configured webhook",
                                  description="Posts one message that pings nobody to each configured webhook and"
                                              " says what Discord answered. Exit status 0 when each accepted it.")
    test_webhook.add_argument("--webhook", choices=WEBHOOKS, help="only this webhook")
    test_webhook.set_defaults(handler=_test_webhook)
    return parser


def _service_down(command: str, settings: Settings, error: BaseException) -> str:
    """The one line for a service that is away, naming which one (and where) and why."""
    if isinstance(error, REDIS_ERRORS):
        return f"sofamon {command}: Redis at {safe_url(settings.redis_url)} unreachable: {error_line(error)}"
    return f"sofamon {command}: database {safe_url(settings.database_url)} unavailable: {error_line(error)}"


def _database_errors() -> tuple[type[BaseException], ...]:
    """The database's "away" errors, imported only once an error is being sorted: the database driver costs
    ~9 MB of memory, which `sofamon fetch` (no database) would otherwise carry for its whole life."""
    from shared.storage import TRANSIENT_ERRORS

    return TRANSIENT_ERRORS


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        return handler(settings, args)
    except KeyboardInterrupt:
        return 130
    except (*REDIS_ERRORS, *_database_errors()) as error:
        # A service that is away or refuses is no bug: one line naming it and exit status 1, not a traceback.
        print(_service_down(args.command, settings, error), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
