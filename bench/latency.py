"""Latency and Redis cost per alert, from a stream entry to the fake Discord's receipt.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/latency.py [--alerts 1000] [--rate 50]

The whole way an alert goes, with the real processes: entries are written to the fetched stream as the
fetcher writes them (`fetcher.streams.append`, one predictor's page with one new tip each), a real
`sofamon process` turns them into alerts and jobs, two real `sofamon notify` (as `make run` starts them)
post them to the fake Discord, which notes when each message arrived. Two runs of `--alerts` alerts each:

* paced: entries at `--rate` per second (50: the issue's 1,000-predictor cycle, 1,000 requests in 20 s),
  a new tip in every one: the latency of each alert through an idle pipeline;
* burst: the same number of entries written back to back: a backlog, which the notifiers pack ten to a
  message.

The fake Discord's limits are set out of the way (a bucket of 50 requests per second, no hidden channel
limit; `DISCORD_MESSAGES_PER_MINUTE=6000`), so the figures are the pipeline's own and not Discord's (whose
30 messages a minute per channel `bench/delivery.py` measures). Latency is from the entry's stream id (the
time Redis stored it) to the fake's receipt. Redis commands are counted with MONITOR on the benchmark's
database only (the server may be shared, see `tests/commandcount.py`), from the first entry written to the
last receipt, each attributed to the process that sent it (a script's commands to its caller).

Uses BENCH_REDIS_URL (default redis://127.0.0.1:6379/14), which it flushes, and a scratch SQLite file;
touches nothing else. Takes about a minute.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from rq import Worker  # noqa: E402

from fetcher.streams import append  # noqa: E402
from shared.console import table  # noqa: E402
from shared.jobs import alerts_queue  # noqa: E402
from shared.keys import Keys  # noqa: E402
from shared.models import FetchRecord  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.storage import Database  # noqa: E402
from tests.commandcount import CommandCounter, client_ports  # noqa: E402
from tests.fakes.discord import FakeDiscord  # noqa: E402

NOTIFIERS = 2
PREFIX = "bench"
FIRST_EVENT = 70_000_000
START_TIMEOUT = 60.0
BUCKET_LIMIT, BUCKET_WINDOW = 50, 1.0  # the fake's per-webhook bucket: out of the way
MESSAGES_PER_MINUTE = 6000


def page(n: int, now: float) -> str:
    """Predictor n's page: one tip, new, on its own match two hours ahead."""
    tip = {"id": f"{n:024x}", "customId": f"b{n}", "eventId": FIRST_EVENT + n, "eventSlug": f"home-{n}-away-{n}",
           "sportSlug": "football", "homeTeamName": f"Home {n}", "awayTeamName": f"Away {n}",
           "startDateTimestamp": int(now) + 7200, "status": {"code": 0, "type": "notstarted"},
           "vote": "1", "voteType": 1, "odds": {"decimalValue": "2.00", "fractionalValue": "1/1"}}
    return json.dumps({"predictions": [tip], "hasNextPage": False})


def event_of(embed: dict) -> int:
    """The event id an embed links to (`...#id:<event id>`)."""
    return int(str(embed["url"]).rsplit("#id:", 1)[1])


@dataclass
class Run:
    name: str
    latencies: list[float]  # seconds, one per alert
    elapsed: float
    messages: int
    commands: Counter[tuple[str, str]]  # (process, command) -> count

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class System:
    """One `sofamon process` and NOTIFIERS `sofamon notify`, with their output in the scratch directory."""

    def __init__(self, env: dict[str, str], scratch: Path) -> None:
        self.env = env
        self.scratch = scratch
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> None:
        for name, command in [("processor", "process"), *((f"notifier-{i}", "notify") for i in range(NOTIFIERS))]:
            with open(self.scratch / f"{name}.log", "wb") as out:
                self.procs[name] = subprocess.Popen([sys.executable, "-m", "sofamon.cli", command], env=self.env,
                                                    cwd=self.scratch, stdout=out, stderr=subprocess.STDOUT)

    def roles(self) -> dict[int, str]:
        """Local port -> process ("processor", "notifier"), for the commands MONITOR saw."""
        return {port: name.split("-")[0] for name, proc in self.procs.items() for port in client_ports(proc.pid)}

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with status {proc.returncode}: see {self.scratch / name}.log\n"
                                 + (self.scratch / f"{name}.log").read_text()[-2000:])

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def running(env: dict[str, str], scratch: Path) -> Iterator[System]:
    system = System(env, scratch)
    try:
        system.start()
        yield system
    finally:
        system.stop()


def write(conn: redis.Redis, keys: Keys, first: int, count: int, rate: float | None) -> dict[int, float]:
    """Write `count` entries (at `rate` per second, or back to back); event id -> when Redis stored its entry."""
    written = {}
    started = time.monotonic()
    for i in range(count):
        if rate:
            pause = started + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        n = first + i
        record = FetchRecord(kind="predictions", subject=f"bench{n:06d}", fetched_at=time.time(),
                             payload=page(n, time.time()))
        entry = append(conn, keys, record, retention_days=7)
        written[FIRST_EVENT + n] = int(entry.split("-")[0]) / 1000
    return written


def received(fake: FakeDiscord, since: int) -> dict[int, float]:
    """Event id -> when the fake accepted the message carrying its alert, for messages from `since` on."""
    with fake.lock:
        messages = fake.accepted[since:]
    return {event_of(embed): message["time"] for message in messages for embed in message["payload"]["embeds"]}


def wait_for(fake: FakeDiscord, since: int, events: set[int], system: System, timeout: float) -> dict[int, float]:
    deadline = time.monotonic() + timeout
    while True:
        got = received(fake, since)
        if events <= got.keys():
            return got
        system.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(events & got.keys())} of {len(events)} alerts arrived in {timeout:.0f} s")
        time.sleep(0.05)


def measure(name: str, url: str, conn: redis.Redis, keys: Keys, fake: FakeDiscord, system: System, first: int,
            count: int, rate: float | None) -> Run:
    since = len(fake.accepted)
    with CommandCounter(url) as counter:
        writer_port = int(str(conn.client_info()["addr"]).rsplit(":", 1)[1])  # one connection: one thread writes
        started = time.monotonic()
        written = write(conn, keys, first, count, rate)
        got = wait_for(fake, since, set(written), system, timeout=120)
        elapsed = time.monotonic() - started
        roles = system.roles()
        counter.stop()
    roles[writer_port] = "fetcher"
    commands: Counter[tuple[str, str]] = Counter()
    for (client, command), n in counter.by_client.items():
        port = int(client.rsplit(":", 1)[1]) if ":" in client else -1
        commands[(roles.get(port, "other"), command)] += n
    with fake.lock:
        embeds = sum(len(message["payload"]["embeds"]) for message in fake.accepted[since:])
    if embeds != count:
        print(f"{name}: {embeds - count} alerts posted more than once", flush=True)
    return Run(name, [got[event] - written[event] for event in written], elapsed, len(fake.accepted) - since, commands)


def report(runs: list[Run], alerts: int) -> None:
    rows = [[run.name, f"{len(run.latencies):,}", f"{run.elapsed:.1f} s", f"{run.percentile(50) * 1000:,.0f} ms",
             f"{run.percentile(99) * 1000:,.0f} ms", f"{len(run.latencies) / run.messages:.1f}",
             *(f"{_per_alert(run, role):.1f}" for role in ("fetcher", "processor", "notifier")),
             f"{sum(run.commands.values()) / alerts:.1f}"] for run in runs]
    print("\n".join(table(rows, ["run", "alerts", "elapsed", "p50", "p99", "alerts/msg", "fetcher", "processor",
                                 "notifier", "Redis commands/alert"])))
    for run in runs:
        print(f"\n{run.name}: Redis commands per alert, by command")
        by_command: Counter[tuple[str, str]] = Counter()
        for (role, command), n in run.commands.items():
            by_command[(command, role)] += n
        totals: Counter[str] = Counter()
        for (command, _), n in by_command.items():
            totals[command] += n
        rows = [[command, *(f"{by_command[(command, role)] / alerts:.2f}" for role in ("processor", "notifier")),
                 f"{n / alerts:.2f}"] for command, n in totals.most_common() if n / alerts >= 0.05]
        print("\n".join(table(rows, ["command", "processor", "notifier", "total"], indent=2)))


def _per_alert(run: Run, role: str) -> float:
    return sum(n for (who, _), n in run.commands.items() if who == role) / len(run.latencies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="entries per second of the paced run")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sofamon-latency-") as scratch_dir, \
            FakeDiscord(bucket_limit=BUCKET_LIMIT, bucket_window=BUCKET_WINDOW, channel_per_minute=None,
                        clock=time.time) as fake:
        scratch = Path(scratch_dir)
        database_url = f"sqlite:///{scratch}/bench.db"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
               "REDIS_URL": args.redis_url, "REDIS_PREFIX": PREFIX, "DATABASE_URL": database_url,
               "DISCORD_WEBHOOK_URL": fake.url(), "DISCORD_MESSAGES_PER_MINUTE": str(MESSAGES_PER_MINUTE),
               "LOG_LEVEL": "WARNING"}
        settings = Settings(_env_file=None, redis_url=args.redis_url, redis_prefix=PREFIX, database_url=database_url)
        keys = Keys.of(settings)
        conn = redis.Redis.from_url(args.redis_url)
        conn.flushdb()
        Database(database_url).migrate()
        try:
            with running(env, scratch) as system:
                # Warm-up: every process up (both notifiers registered), one alert through.
                wait_for(fake, 0, set(write(conn, keys, 0, 1, None)), system, START_TIMEOUT)
                deadline = time.monotonic() + START_TIMEOUT
                while Worker.count(queue=alerts_queue(conn)) < NOTIFIERS and time.monotonic() < deadline:
                    system.check()
                    time.sleep(0.1)
                print(f"{args.alerts:,} alerts, paced at {args.rate:g} entries/s, then in a burst; fake Discord:"
                      f" {BUCKET_LIMIT} requests per {BUCKET_WINDOW:g} s per webhook, no channel limit", flush=True)
                runs = [measure("paced", args.redis_url, conn, keys, fake, system, 1, args.alerts, args.rate),
                        measure("burst", args.redis_url, conn, keys, fake, system, 1 + args.alerts, args.alerts,
                                None)]
        finally:
            conn.flushdb()
            conn.close()
        report(runs, args.alerts)
        print(f"\n429 answers: {fake.count_429}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
