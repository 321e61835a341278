"""Processor cost: CPU and time per tip on SQLite and PostgreSQL, with 10 thousand and 1 million tips stored,
and the Redis commands it spends per alert.

    .venv/bin/python bench/processing.py [--histories 10000,1000000] [--predictors 1000] [--pages 2000] [--profile]

    BENCH_REDIS_URL     Redis to use, its db flushed (default redis://127.0.0.1:6379/14)
    BENCH_POSTGRES_URL  PostgreSQL (default postgresql://postgres@127.0.0.1:5432/test; a scratch schema in it)

For each database and each history size, a database first gets the history (tests/seed.py: old tips of a
thousand predictors, their alerts, their events' prices), then two workloads go through a processor in
this process, burst mode, logging at INFO to a scratch file as a running one does:

- new tips: a page of 20 tips from each of `--predictors` predictors (1,000: 20,000 tips), every tip new
  and on a match of its own within the look-ahead: as many new-tip alerts;
- steady: `--pages` pages of 20 tips of which 3 are new (ten predictors whose pages slide), each followed
  by the odds of one of their events: what polling cycles write.

The stream is filled before the clock starts. CPU is the process's own (time.process_time: the processor
is all this process runs meanwhile); wall time includes waiting for Redis and the database, which run on
the same machine. Redis commands are counted in separate, smaller runs, by a second process reading
MONITOR (the commands Lua scripts run included), so counting costs the measured process nothing:
for a backlog of new tips, for the steady mix, and for the steady mix read one entry at a time (a
processor that keeps up with the fetcher reads entries as they come). PostgreSQL is skipped, with a line
saying so, when it does not answer. `--profile` adds a new-tips run on SQLite under cProfile and prints
where its time goes.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import multiprocessing
import os
import platform
import pstats
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402

import processor.main  # noqa: E402
from processor.main import Processor  # noqa: E402
from shared.console import show, table  # noqa: E402
from shared.keys import Keys  # noqa: E402
from shared.logs import setup_logging  # noqa: E402
from shared.models import FetchRecord  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.storage import Database  # noqa: E402
from tests.fakes.sofascore import load_fixture  # noqa: E402
from tests.seed import seed_history  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
NOW = float(int(time.time()))
TIPS_PER_PAGE = 20
NEW_PER_PAGE = 3
STOP_WORD = "bench-monitor-stop"


# -- what the stream holds ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Feed:
    entries: int
    tips: int  # tips on the pages read


def _tip(tip_id: str, event: int, start: int) -> dict[str, Any]:
    return {"id": tip_id, "customId": "abc", "eventId": event, "eventSlug": "home-away", "sportSlug": "football",
            "homeTeamName": "Home", "awayTeamName": "Away", "startDateTimestamp": start,
            "status": {"code": 0, "type": "notstarted"}, "vote": "1", "voteType": 1,
            "odds": {"decimalValue": "2.00", "fractionalValue": "1/1"}}


def _odds(price: str) -> dict[str, Any]:
    return {"markets": [{"marketId": 1, "marketName": "Full time", "choices": [
        {"name": "1", "fractionalValue": price}, {"name": "X", "fractionalValue": "2/1"},
        {"name": "2", "fractionalValue": "3/1"}]}]}


def _add(pipe: Any, keys: Keys, kind: str, subject: str, payload: Any, at: float) -> None:
    pipe.xadd(keys.fetched, FetchRecord(kind=kind, subject=subject, fetched_at=at,
                                        payload=json.dumps(payload)).to_fields())


def _leaderboard(predictors: list[str]) -> dict[str, Any]:
    """The fixture's first entry as every one of these predictors (their statistics, for the alerts)."""
    template = load_fixture("vote-ranking.json")["ranking"][0]
    return {"ranking": [{**template, "id": p, "nickname": p, "slug": None} for p in predictors]}


def new_tips_feed(conn: redis.Redis, keys: Keys, tag: str, predictors: int, first_event: int) -> Feed:
    """A page of 20 new tips from each predictor, each tip on a match of its own in the next 20 hours."""
    names = [f"{tag}-user{p}" for p in range(predictors)]
    pipe = conn.pipeline(transaction=False)
    _add(pipe, keys, "leaderboard", "top", _leaderboard(names), NOW)
    for p, name in enumerate(names):
        tips = [_tip(f"{tag}-{p}-{n}", first_event + p * TIPS_PER_PAGE + n, int(NOW) + 3600 + n * 3000)
                for n in range(TIPS_PER_PAGE)]
        _add(pipe, keys, "predictions", name, {"predictions": tips, "hasNextPage": False}, NOW + p / 1000)
    pipe.execute()
    return Feed(predictors + 1, predictors * TIPS_PER_PAGE)


def steady_feed(conn: redis.Redis, keys: Keys, tag: str, pages: int, first_event: int) -> Feed:
    """Ten predictors whose pages slide by three new tips each fetch; the odds of an event after every page."""
    names = [f"{tag}-user{i}" for i in range(10)]
    pipe = conn.pipeline(transaction=False)
    _add(pipe, keys, "leaderboard", "top", _leaderboard(names), NOW)
    for i in range(pages):
        first = (i // 10) * NEW_PER_PAGE
        tips = [_tip(f"{tag}-{n}", first_event + n // 2, int(NOW) + 7200) for n in range(first, first + TIPS_PER_PAGE)]
        _add(pipe, keys, "predictions", names[i % 10], {"predictions": tips, "hasNextPage": True}, NOW + i)
        _add(pipe, keys, "odds", str(first_event + first // 2), _odds("1/1" if i % 2 else "4/5"), NOW + i)
    pipe.execute()
    return Feed(2 * pages + 1, pages * TIPS_PER_PAGE)


# -- one run -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    database: str
    stored: int  # tips stored before the run
    workload: str
    feed: Feed
    alerts: int
    cpu: float  # the processor's
    server_cpu: float | None  # its PostgreSQL backend's, when it runs on this machine
    wall: float

    @property
    def tips_per_second(self) -> float:
        return self.feed.tips / self.wall

    @property
    def cpu_per_tip(self) -> float:
        return self.cpu / self.feed.tips

    @property
    def total_cpu_per_tip(self) -> float:
        """The processor's and its database server's: SQLite does in the processor what PostgreSQL does apart."""
        return (self.cpu + (self.server_cpu or 0.0)) / self.feed.tips


def settings_for(database_url: str) -> Settings:
    return Settings(_env_file=None, redis_url=REDIS_URL, redis_prefix="bench", database_url=database_url)


def server_cpu(pid: int | None) -> float | None:
    """CPU seconds a PostgreSQL backend of this machine has used so far; None when it is not here to read."""
    stat = Path(f"/proc/{pid}/stat")
    if pid is None or not stat.exists() or b"postgres" not in Path(f"/proc/{pid}/cmdline").read_bytes():
        return None
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def process(settings: Settings, db: Database,
            profile: cProfile.Profile | None = None) -> tuple[float, float | None, float]:
    """Run a processor over the whole stream; (its CPU seconds, its PostgreSQL backend's, wall seconds)."""
    conn = redis.Redis.from_url(REDIS_URL)
    worker = Processor(settings, conn, db, name="bench", clock=lambda: NOW)
    pid = None
    if db.dialect == "postgresql":
        with db.read() as tx:  # the connection the processor goes on with
            row = tx.one("SELECT pg_backend_pid()")
        pid = int(row[0]) if row else None
    server, cpu, wall = server_cpu(pid), time.process_time(), time.perf_counter()
    if profile is not None:
        profile.enable()
    worker.run(burst=True)
    if profile is not None:
        profile.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = server_cpu(pid)
    conn.close()
    return cpu, after - server if after is not None and server is not None else None, wall


def alert_count(db: Database) -> int:
    with db.read() as tx:
        row = tx.one("SELECT COUNT(*) FROM alerts")
    return int(row[0]) if row else 0


def run(name: str, database_url: str, stored: int, workload: str, fill: Callable[[redis.Redis, Keys], Feed],
        profile: cProfile.Profile | None = None) -> Run:
    conn = redis.Redis.from_url(REDIS_URL)
    conn.flushdb()
    settings = settings_for(database_url)
    feed = fill(conn, Keys.of(settings))
    db = Database(database_url)
    before = alert_count(db)
    cpu, server, wall = process(settings, db, profile)
    alerts = alert_count(db) - before
    db.close()
    conn.flushdb()
    conn.close()
    return Run(name, stored, workload, feed, alerts, cpu, server, wall)


@contextmanager
def database(name: str, scratch: str) -> Iterator[str | None]:
    """A scratch database's URL (None: PostgreSQL does not answer), removed afterwards."""
    if name == "sqlite":
        path = Path(scratch) / f"bench-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError:
        yield None
        return
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


# -- Redis commands, counted by another process ------------------------------------------------------------
def _monitor(url: str, db: int, ready: Any, results: Any) -> None:
    """Count the commands run on `db` (scripts' included) until the stop word comes by."""
    counts: Counter[str] = Counter()
    sent = 0
    with redis.Redis.from_url(url).monitor() as monitor:
        ready.set()
        for command in monitor.listen():
            if command["db"] != db:
                continue
            if STOP_WORD in command["command"]:
                break
            counts[command["command"].split(" ", 1)[0].upper()] += 1
            sent += command["client_type"] != "lua"
    results.put((dict(counts), sent))


@dataclass(frozen=True)
class Commands:
    workload: str
    alerts: int
    counts: dict[str, int]
    sent: int  # not counting those scripts ran inside Redis

    @property
    def per_alert(self) -> float:
        return sum(self.counts.values()) / max(self.alerts, 1)


def count_commands(database_url: str, workload: str, fill: Callable[[redis.Redis, Keys], Feed],
                   batch: int | None = None) -> Commands:
    conn = redis.Redis.from_url(REDIS_URL)
    conn.flushdb()
    settings = settings_for(database_url)
    fill(conn, Keys.of(settings))
    db = Database(database_url)
    before = alert_count(db)
    spawn = multiprocessing.get_context("spawn")
    ready, results = spawn.Event(), spawn.Queue()
    counter = spawn.Process(target=_monitor, args=(REDIS_URL, conn.connection_pool.connection_kwargs.get("db", 0),
                                                   ready, results), daemon=True)
    counter.start()
    ready.wait(30)
    time.sleep(0.2)  # MONITOR is on once the reply came; the event is set just before
    saved = processor.main.BATCH
    processor.main.BATCH = batch or saved
    try:
        process(settings, db)
    finally:
        processor.main.BATCH = saved
    conn.echo(STOP_WORD)
    counts, sent = results.get(timeout=60)
    counter.join(10)
    alerts = alert_count(db) - before
    db.close()
    conn.flushdb()
    conn.close()
    return Commands(workload, alerts, counts, sent)


# -- the whole benchmark -----------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--histories", default="10000,1000000", help="tips stored before, comma-separated")
    parser.add_argument("--predictors", type=int, default=1000, help="pages of 20 new tips (new tips workload)")
    parser.add_argument("--pages", type=int, default=2000, help="pages of the steady workload")
    parser.add_argument("--profile", action="store_true", help="profile a new-tips run on SQLite, apart")
    args = parser.parse_args()
    histories = [int(h) for h in args.histories.split(",")]
    started = time.perf_counter()
    runs: list[Run] = []
    commands: list[Commands] = []
    profile = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as scratch:
        setup_logging(settings_for(f"sqlite:///{scratch}/unused.db"), "processor")
        log_file = open(Path(scratch) / "processor.log", "w")  # noqa: SIM115 - open for the whole run
        logging.getLogger().handlers[0].setStream(log_file)  # type: ignore[attr-defined]
        for name in ("sqlite", "postgresql"):
            for stored in histories:
                with database(name, scratch) as url:
                    if url is None:
                        print(f"{name}: not reachable at BENCH_POSTGRES_URL, skipped", file=sys.stderr)
                        break
                    print(f"{name}, {stored:,} tips stored ...", file=sys.stderr)
                    db = Database(url)
                    db.migrate()
                    seed_history(db, stored, NOW)
                    db.close()
                    runs.append(run(name, url, stored, "new tips",
                                    lambda c, k: new_tips_feed(c, k, "new", args.predictors, 100_000_000)))
                    runs.append(run(name, url, stored, "steady",
                                    lambda c, k: steady_feed(c, k, "steady", args.pages, 200_000_000)))
                    if name == "sqlite" and not commands:
                        commands = [
                            count_commands(url, "new tips (a backlog)",
                                           lambda c, k: new_tips_feed(c, k, "count", 100, 300_000_000)),
                            count_commands(url, "steady (a backlog)",
                                           lambda c, k: steady_feed(c, k, "count1", 500, 400_000_000)),
                            count_commands(url, "steady, one entry per read",
                                           lambda c, k: steady_feed(c, k, "count2", 200, 500_000_000), batch=1),
                        ]
        if profile is not None:  # a run of its own: profiling slows down what it watches
            with database("sqlite", scratch) as url:
                assert url is not None
                db = Database(url)
                db.migrate()
                seed_history(db, histories[0], NOW)
                db.close()
                run("sqlite", url, histories[0], "new tips",
                    lambda c, k: new_tips_feed(c, k, "new", args.predictors, 100_000_000), profile)
        log_file.close()
    report(runs, commands, time.perf_counter() - started)
    if profile is not None:
        print(f"\nprofile of {args.predictors * TIPS_PER_PAGE:,} new tips on SQLite ({histories[0]:,} stored):")
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(15)
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    return 0


def machine() -> str:
    """What the figures were measured on."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?") if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    versions = [f"Python {platform.python_version()}"]
    try:
        versions.append(f"Redis {redis.Redis.from_url(REDIS_URL).info('server')['redis_version']}")
    except redis.RedisError:
        pass
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=5) as conn:
            versions.append(f"PostgreSQL {conn.info.server_version // 10000}.{conn.info.server_version % 10000}")
    except psycopg.OperationalError:
        pass
    load = ", load %.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else ""
    return f"{os.cpu_count()} x {cpu}{load}; {', '.join(versions)}"


def report(runs: list[Run], commands: list[Commands], elapsed: float) -> None:
    print(machine())
    rows = [[r.database, f"{r.stored:,}", r.workload, f"{r.feed.entries:,}", f"{r.feed.tips:,}", f"{r.alerts:,}",
             f"{r.cpu:.2f}", f"{r.server_cpu:.2f}" if r.server_cpu is not None else "-", f"{r.wall:.2f}",
             f"{r.tips_per_second:,.0f}", f"{r.cpu_per_tip * 1e6:.0f}", f"{r.total_cpu_per_tip * 1e6:.0f}"]
            for r in runs]
    show("\n".join(table(rows, ["database", "tips stored", "workload", "entries", "tips", "alerts", "CPU s",
                                "server CPU s", "wall s", "tips/s", "CPU µs/tip", "with server"])))
    print()
    by = {(r.database, r.stored, r.workload): r for r in runs}
    lines = []
    for r in runs:
        if r.database == "sqlite" and r.workload == "new tips" and r.stored == min(x.stored for x in runs):
            lines.append(f"{r.feed.tips:,} new tips on SQLite: {r.cpu:.2f} CPU-seconds (target: at most 5)")
    for r in runs:
        base = by.get(("sqlite", r.stored, r.workload))
        if r.database == "postgresql" and base is not None:
            server = (f", {r.total_cpu_per_tip / base.total_cpu_per_tip:.2f}x with its server's"
                      if r.server_cpu is not None else "")
            lines.append(f"PostgreSQL per tip, {r.workload}, {r.stored:,} stored: {r.cpu_per_tip / base.cpu_per_tip:.2f}x"
                         f" SQLite's processor CPU{server}, {base.tips_per_second / r.tips_per_second:.2f}x its wall"
                         " time (target: at most 1.3x)")
    for r in runs:
        small = by.get((r.database, min(x.stored for x in runs), r.workload))
        if small is not None and r.stored != small.stored:
            lines.append(f"{r.database}, {r.workload}: {r.stored:,} tips stored vs {small.stored:,}:"
                         f" {r.tips_per_second / small.tips_per_second:.2f}x the tips per second")
    show("\n".join(lines))
    if commands:
        print()
        rows = [[c.workload, f"{c.alerts:,}", f"{sum(c.counts.values()):,}", f"{c.sent:,}", f"{c.per_alert:.2f}",
                 ", ".join(f"{k} {v:,}" for k, v in sorted(c.counts.items(), key=lambda kv: -kv[1])[:8])]
                for c in commands]
        show("\n".join(table(rows, ["Redis commands (SQLite)", "alerts", "commands", "sent", "per alert",
                                    "most run"])))
        print("(commands: all, those scripts run inside Redis included; sent: over the connection)")
    print(f"\nbench/processing.py took {elapsed:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
