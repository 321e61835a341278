"""Fetcher benchmark: requests per cycle and per hour, a cycle's wall time against the ideal, resident memory.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/fetching.py [--predictors 1000] [--tips 20]
                                                 [--cold] [--timed-cycle 2] [--latency 0.05]

The world: a fake Sofascore (tests/fakes/sofascore.py) with `--predictors` predictors on the leaderboard, each
with `--tips` live tips on events of their own whose kick-offs are spread evenly over the next 48 h. Every
event is watched, as the processor marks an event once its tip alerted, and the fetcher has been running
for a while: each event's odds were last answered somewhere within its cadence band's period (the steady
state; a cold start asks every event once in its first cycle instead).

The real fetcher (`fetcher.cycle.Fetcher` with its `SofascoreClient`, HTTP_CONCURRENCY 5) runs in a child process of its own, so that its resident memory is the fetcher's alone,
on a simulated clock: one cycle every SCAN_INTERVAL_MINUTES over one hour, run back to back. The fake
answers at once, except in one cycle where it takes `--latency` (50 ms) per request: that cycle's wall
time is compared with the ideal, requests x latency / concurrency. The fetcher's request budget, when it
has one, is raised out of the way (UPSTREAM_MAX_REQUESTS_PER_MINUTE=0). Other settings come from the
environment as usual (HTTP_CLIENT, ODDS_*). Uses the Redis db of BENCH_REDIS_URL (default 14), which it
flushes; touches nothing else. Takes one to two minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Only what the child (the fetcher) imports too: the fake and its fixtures are imported in the parent's
# functions, so they take no room in the memory measured.
from shared.settings import Settings  # noqa: E402

PREFIX = "bench"
HORIZON = 48 * 3600.0  # kick-offs spread over the next 48 h
HOUR = 3600.0
BUDGET_SETTING = "upstream_max_requests_per_minute"
KINDS = ("leaderboard", "predictions", "odds", "event")
_KIND_OF_PATH = (
    ("leaderboard", re.compile(r"/user-account/vote-ranking")),
    ("predictions", re.compile(r"/user-account/[^/]+/predictions")),
    ("odds", re.compile(r"/event/\d+/odds/")),
    ("event", re.compile(r"/event/\d+/?$")),
)


def settings_for(redis_url: str, base_url: str, predictors: int) -> Settings:
    """The settings of the environment (as the fetcher reads them), except where the world lives and how many
    predictors to follow."""
    return Settings(_env_file=None, redis_url=redis_url, redis_prefix=PREFIX, sofascore_base_url=base_url,
                    top_predictors_limit=predictors, http_concurrency=5, log_level="WARNING")


# -- the child: the fetcher under test --------------------------------------------------------------------


class SimClock:
    """The fetcher's clock, set by the parent before each cycle."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def memory_kb() -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of this process, in kB."""
    status = Path("/proc/self/status").read_text()
    return {name: int(re.search(rf"^{name}:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]
            for name in ("VmRSS", "VmHWM")}


def child(redis_url: str, base_url: str, predictors: int) -> int:
    """Run one cycle per line of stdin (the simulated time); answer each with one JSON line on stdout."""
    import sofamon.cli  # noqa: F401 - the modules `sofamon fetch` has loaded, so the RSS compares with it
    from fetcher.client import SofascoreClient
    from fetcher.cycle import Fetcher
    from shared import malloc
    from shared.logs import setup_logging
    from shared.redisconn import connect

    settings = settings_for(redis_url, base_url, predictors)
    setup_logging(settings, "fetcher")
    malloc.fix_mmap_threshold()  # as `fetcher.main.run` does
    clock = SimClock()
    conn = connect(settings)
    with SofascoreClient(settings) as client:
        fetcher = Fetcher(settings, conn, client, clock=clock)
        fetcher.load_state()
        print(json.dumps(memory_kb()), flush=True)
        for line in sys.stdin:
            clock.now = float(line)
            started = time.perf_counter()
            report = fetcher.run_cycle()
            wall = time.perf_counter() - started
            print(json.dumps({"wall": wall, "requests": report.requests, "failures": report.failures,
                              "pending": fetcher.pending, **memory_kb()}), flush=True)
    conn.close()
    return 0


# -- the parent: the world, the hour, the table -----------------------------------------------------------


@dataclass(frozen=True)
class World:
    start: float
    kickoffs: dict[int, float]  # event id -> kick-off


def build_world(fake: Any, predictors: int, tips: int, start: float) -> World:
    """Leaderboard, feeds and odds on the fake: each live tip on an event of its own, kick-offs spread over 48 h.

    Below each predictor's live tips (page 0) lies a page of finished ones, as for anyone with a history:
    page 0 says there is a next page, so every poll judges whether page 0 brought anything new.
    """
    from tests.fakes.sofascore import load_fixture

    ranking_entry = load_fixture("vote-ranking.json")["ranking"][0]
    fixture = load_fixture(f"user-{ranking_entry['id']}-page0.json")["predictions"]
    live = next(p for p in fixture if p["status"]["type"] == "notstarted")
    finished = load_fixture(f"user-{ranking_entry['id']}-page1.json")["predictions"][0]
    odds = load_fixture("event-15981204-odds-all.json")
    total = predictors * tips
    kickoffs: dict[int, float] = {}
    ranking = []
    with fake.lock:
        for p in range(predictors):
            pid = f"{p:024x}"
            ranking.append({**ranking_entry, "id": pid, "nickname": f"Bench_{p}", "slug": f"bench-{p}"})
            feed = []
            for t in range(tips):
                n = t * predictors + p  # neighbours in time belong to different predictors
                event = 20_000_000 + n
                kickoffs[event] = float(int(start + 60 + (n + 0.5) * (HORIZON - 60) / total))
                feed.append({**live, "id": f"{n:024x}", "eventId": event, "customId": f"c{n}",
                             "eventSlug": f"home-{n}-away-{n}", "startDateTimestamp": int(kickoffs[event])})
            for t in range(fake.page_size):
                n = t * predictors + p
                feed.append({**finished, "id": f"f{n:023x}", "eventId": 10_000_000 + n,
                             "startDateTimestamp": int(start - 86400 - n * 60)})
            fake.feeds[pid] = feed
        fake.ranking = ranking
        fake.odds = dict.fromkeys(kickoffs, odds)  # one payload object served for every event
    return World(start, kickoffs)


def seed(settings: Settings, world: World, rng: random.Random, cold: bool) -> None:
    """Every event watched, as the processor marks them. Unless `cold`, each event's odds were last answered
    somewhere within its cadence band's period, as after hours of running."""
    from fetcher import oddspolls
    from fetcher.cadence import Cadence
    from shared import watch
    from shared.keys import Keys
    from shared.redisconn import connect

    cadence = Cadence.of(settings)
    answered = {}
    for event, kickoff in world.kickoffs.items():
        to_go = kickoff - world.start
        if to_go > cadence.slow_beyond:
            period = cadence.slow_every
        elif to_go > cadence.every_cycle_within:
            period = cadence.mid_every
        else:
            period = settings.scan_interval_minutes * 60
        answered[str(event)] = world.start - rng.uniform(0, period)
    conn = connect(settings)
    keys = Keys.of(settings)
    watch.add(conn, keys, world.kickoffs)
    if not cold:
        oddspolls.record(conn, keys, answered, [], [])
    conn.close()


def kind_of(path: str) -> str:
    return next((kind for kind, pattern in _KIND_OF_PATH if pattern.search(path)), "other")


@dataclass
class Cycle:
    at: float
    counts: Counter[str]
    every_cycle_odds: int  # watched events not kicked off: what polling all of them every cycle asks
    report: dict[str, Any]
    latency: float


class Child:
    """The fetcher process: one cycle per `run`, its answer read back."""

    def __init__(self, redis_url: str, base_url: str, predictors: int) -> None:
        env = dict(os.environ)
        if BUDGET_SETTING in Settings.model_fields:
            env[BUDGET_SETTING.upper()] = "0"  # the budget would spread the hour's requests: raised out of the way
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child", redis_url, base_url, str(predictors)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.started = self._answer()

    def _answer(self) -> dict[str, Any]:
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        line = stdout.readline()
        if not line:
            raise SystemExit(f"the fetcher process ended (exit status {self.process.wait()})")
        return json.loads(line)

    def run(self, at: float) -> dict[str, Any]:
        stdin: IO[str] = self.process.stdin  # type: ignore[assignment]
        stdin.write(f"{at!r}\n")
        stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def run_hour(fake: Any, child: Child, world: World, every: float, latency: float, timed: int) -> list[Cycle]:
    cycles = []
    at = world.start
    for index in range(int(HOUR // every)):
        fake.latency = latency if index == timed else 0.0
        fake.clear_requests()
        report = child.run(at)
        with fake.lock:
            counts = Counter(kind_of(r.path) for r in fake.requests)
        waiting = sum(1 for kickoff in world.kickoffs.values() if kickoff > at)
        cycles.append(Cycle(at, counts, waiting, report, fake.latency))
        print(f"  cycle {index + 1:>2} at +{(at - world.start) / 60:4.0f} min: {sum(counts.values()):>6,} requests,"
              f" {report['wall']:6.1f} s{' (timed)' if index == timed else ''}", flush=True)
        at += every
    return cycles


def table(cycles: list[Cycle], world: World) -> list[str]:
    """Requests by kind for each cycle, the hour and the mean cycle, with the fetcher's memory after each."""
    lines = [f"{'cycle':<7}{'at':>7}" + "".join(f"{k:>13}" for k in KINDS) + f"{'total':>9}{'RSS MB':>9}{'peak MB':>9}"]
    for i, c in enumerate(cycles, 1):
        lines.append(f"{i:<7}{f'+{(c.at - world.start) / 60:.0f} min':>7}"
                     + "".join(f"{c.counts[k]:>13,}" for k in KINDS)
                     + f"{sum(c.counts[k] for k in KINDS):>9,}{c.report['VmRSS'] / 1024:>9.1f}"
                     + f"{c.report['VmHWM'] / 1024:>9.1f}")
    hour = hour_counts(cycles)
    total = sum(hour[k] for k in KINDS)
    lines.append(f"{'hour':<14}" + "".join(f"{hour[k]:>13,}" for k in KINDS) + f"{total:>9,}")
    lines.append(f"{'per cycle':<14}" + "".join(f"{hour[k] / len(cycles):>13,.0f}" for k in KINDS)
                 + f"{total / len(cycles):>9,.0f}")
    return lines


def hour_counts(cycles: list[Cycle]) -> Counter[str]:
    hour = Counter[str]()
    for c in cycles:
        hour.update(c.counts)
    return hour


def verdicts(cycles: list[Cycle], concurrency: int, started_kb: int) -> list[str]:
    """Odds against polling everything, the timed cycle against the ideal, the fetcher's memory."""
    odds = hour_counts(cycles)["odds"]
    every = sum(c.every_cycle_odds for c in cycles)
    ratio = odds / every if every else 0.0
    lines = [f"odds requests in the hour:   {odds:,} against {every:,} polling every watched event every"
             f" cycle: {ratio:.2f} ({'within' if ratio <= 1 / 3 else 'ABOVE'} the 1/3 target)"]
    for timed in (c for c in cycles if c.latency):
        requests = sum(timed.counts.values())
        ideal = requests * timed.latency / concurrency
        lines.append(f"cycle at {timed.latency * 1000:.0f} ms a request:    {requests:,} requests in"
                     f" {timed.report['wall']:.1f} s; ideal {ideal:.1f} s"
                     f" (requests x latency / {concurrency}): {timed.report['wall'] / ideal:.2f} x the ideal")
    last = cycles[-1].report
    lines.append(f"fetcher resident memory:     {started_kb / 1024:.1f} MB at start, {last['VmRSS'] / 1024:.1f} MB"
                 f" after the last cycle (steady), peak {last['VmHWM'] / 1024:.1f} MB (VmHWM)")
    failures = sum(c.report["failures"] for c in cycles)
    if failures or last["pending"]:
        lines.append(f"!! {failures} failed request(s), {last['pending']} record(s) not written")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictors", type=int, default=1000)
    parser.add_argument("--tips", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per answer in the timed cycle")
    parser.add_argument("--timed-cycle", type=int, default=2,
                        help="which cycle of the hour runs at --latency (0: none)")
    parser.add_argument("--cold", action="store_true",
                        help="no odds asked before: the first cycle asks every watched event (a first start)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--child", nargs=3, metavar=("REDIS_URL", "BASE_URL", "PREDICTORS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))

    import redis

    from tests.fakes.sofascore import REF_NOW, FakeSofascore

    # The fake's clock is fixed: payloads are served as authored, kick-offs stay put while the fetcher's
    # simulated clock moves through the hour.
    with FakeSofascore(clock=lambda: REF_NOW) as fake:
        settings = settings_for(args.redis_url, fake.base_url, args.predictors)
        conn = redis.Redis.from_url(args.redis_url)
        conn.flushdb()
        world = build_world(fake, args.predictors, args.tips, float(REF_NOW))
        seed(settings, world, random.Random(10), args.cold)
        print(f"{args.predictors:,} predictors x {args.tips} live tips, {len(world.kickoffs):,} watched events"
              f"{' (cold: no odds asked before)' if args.cold else ''}; HTTP_CLIENT {settings.http_client}"
              f" ({settings.browser_profile}); one cycle every {settings.scan_interval_minutes:g} min for an hour",
              flush=True)
        child_process = Child(args.redis_url, fake.base_url, args.predictors)
        try:
            cycles = run_hour(fake, child_process, world, settings.scan_interval_minutes * 60, args.latency,
                              args.timed_cycle - 1)
        finally:
            child_process.close()
        print()
        print("\n".join(table(cycles, world) + [""]
                        + verdicts(cycles, settings.http_concurrency, child_process.started["VmRSS"])))
        conn.flushdb()
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
