"""Two fetchers sharing the work against one: requests per predictor per cycle, and a cycle's wall time.

    BENCH_REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/sharing.py [--predictors 1000] [--tips 20]
                                                                                 [--latency 0.05]

The world of bench/fetching.py (a fake Sofascore with `--predictors` predictors, each with `--tips` live tips
on events of their own, kick-offs spread over 48 h, every event watched and its odds last answered within its
cadence band). First one fetcher alone, then, on a fresh copy of the same world, two fetchers (two
processes, each with its own HTTP client and Redis connection, as on two machines) that know of each other:
two cycles five minutes apart on their clock (untimed: the leaderboard, every predictor's pages), then the
cycle measured, the fake answering each request in `--latency` (50 ms). Each is the real
`fetcher.cycle.Fetcher` with HTTP_CONCURRENCY 5, its request budget out of the way. Prints each run's
requests by kind, predictions requests per predictor (1.00: each polled once), and the cycle's wall time.
Uses the Redis db of BENCH_REDIS_URL (default 14), which it flushes. About a minute.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fetching import BUDGET_SETTING, SimClock, build_world, kind_of, seed, settings_for  # noqa: E402

NAMES = ("fetcher:host-a:bench", "fetcher:host-b:bench")


def child(redis_url: str, base_url: str, predictors: int, name: str) -> int:
    """One cycle at the time read from stdin; its wall time and requests as one JSON line."""
    from fetcher.client import SofascoreClient
    from fetcher.cycle import Fetcher
    from shared.redisconn import connect

    settings = settings_for(redis_url, base_url, predictors).model_copy(update={BUDGET_SETTING: 0})
    conn = connect(settings)
    clock = SimClock()
    with SofascoreClient(settings) as client:
        fetcher = Fetcher(settings, conn, client, clock=clock, name=name or None)
        fetcher.load_state()
        print("ready", flush=True)
        for line in sys.stdin:
            clock.now = float(line)
            started = time.perf_counter()
            report = fetcher.run_cycle()
            print(json.dumps({"wall": time.perf_counter() - started, "requests": report.requests,
                              "predictors": fetcher.owned}), flush=True)
    conn.close()
    return 0


def spawn(redis_url: str, base_url: str, predictors: int, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, __file__, "--child", name, "--redis", redis_url, "--base", base_url,
                             "--predictors", str(predictors)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def cycle(procs: list[subprocess.Popen[str]], at: float) -> list[dict[str, Any]]:
    """One cycle of every fetcher at once, at simulated time `at`; their answers."""
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{at!r}\n")
        proc.stdin.flush()
    return [json.loads(proc.stdout.readline()) for proc in procs]  # type: ignore[union-attr]


def run(fake: Any, redis_url: str, predictors: int, tips: int, latency: float, names: tuple[str, ...]) -> dict:
    """A fresh world, then one cycle of each fetcher named, all at once."""
    import redis

    from fetcher import peers
    from shared.keys import Keys

    redis.Redis.from_url(redis_url).flushdb()
    start = time.time()
    fake.latency = 0.0
    world = build_world(fake, predictors, tips, start)
    settings = settings_for(redis_url, fake.base_url, predictors)
    seed(settings, world, random.Random(7), cold=False)
    procs = [spawn(redis_url, fake.base_url, predictors, name) for name in names]
    # Two cycles untimed: the leaderboard read by one of them (the other takes up its selection at its next
    # cycle), every predictor's pages known. They say they are alive every minute while they wait.
    conn = redis.Redis.from_url(redis_url)
    for at in (start, start + 300):
        for name in names:
            peers.alive(conn, Keys.of(settings), name, at - 1, 3600)
        cycle(procs, at)
    for name in names:
        peers.alive(conn, Keys.of(settings), name, start + 599, 3600)
    conn.close()
    with fake.lock:
        fake.requests = []
    fake.latency = latency
    answers = cycle(procs, start + 600)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
    counts = Counter(kind_of(r.path) for r in fake.requests)
    pages = Counter(r.path for r in fake.requests if kind_of(r.path) == "predictions" and r.path.endswith("page=0"))
    return {"fetchers": len(names), "counts": counts, "wall": max(a["wall"] for a in answers),
            "shares": [a["predictors"] for a in answers], "per_predictor": sum(pages.values()) / predictors,
            "most_per_predictor": max(pages.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictors", type=int, default=1000)
    parser.add_argument("--tips", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.redis, args.base, args.predictors, args.child)
    from tests.fakes.sofascore import FakeSofascore

    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    with FakeSofascore() as fake:
        solo = run(fake, redis_url, args.predictors, args.tips, args.latency, ("",))
        pair = run(fake, redis_url, args.predictors, args.tips, args.latency, NAMES)
    print(f"{args.predictors:,} predictors x {args.tips} live tips, {args.latency * 1000:.0f} ms a request,"
          " HTTP_CONCURRENCY 5 per fetcher")
    print(f"{'fetchers':<9} {'predictions':>11} {'odds':>6} {'leaderboard':>11} {'per predictor':>13}"
          f" {'at most':>7} {'shares':>11} {'cycle s':>8}")
    for r in (solo, pair):
        c = r["counts"]
        print(f"{r['fetchers']:<9} {c['predictions']:>11,} {c['odds']:>6,} {c['leaderboard']:>11}"
              f" {r['per_predictor']:>13.2f} {r['most_per_predictor']:>7} {'/'.join(map(str, r['shares'])):>11}"
              f" {r['wall']:>8.1f}")
    print(f"\ntwo fetchers: {pair['per_predictor']:.2f} requests per predictor per cycle (one: "
          f"{solo['per_predictor']:.2f}); the cycle takes {pair['wall'] / solo['wall']:.2f}x one fetcher's"
          f" ({pair['wall']:.1f} s against {solo['wall']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
