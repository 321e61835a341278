"""Processor throughput: how fast fetched entries become alerts, on SQLite and on PostgreSQL.

    .venv/bin/python bench/processing.py [--entries 2000] [--redis-url redis://127.0.0.1:6379/14]
                                         [--postgres postgresql://postgres@127.0.0.1:5432/test]

Each entry is a predictor's page of 20 tips of which a few are new (as in a real cycle, where most tips
were seen before), plus an odds entry per event. Prints entries per second and alerts per second for each
database. Uses Redis db 14 (flushed), a scratch SQLite file and a scratch PostgreSQL schema; touches
nothing else. PostgreSQL is skipped, with a line saying so, when it does not answer.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402

from processor.main import Processor  # noqa: E402
from shared.keys import Keys  # noqa: E402
from shared.models import FetchRecord  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.storage import Database  # noqa: E402

NOW = time.time()
TIPS_PER_PAGE = 20
NEW_PER_PAGE = 3


def tip(n: int, event: int) -> dict:
    return {"id": f"tip{n:08d}", "customId": "abc", "eventId": event, "eventSlug": "home-away", "sportSlug": "football",
            "homeTeamName": "Home", "awayTeamName": "Away", "startDateTimestamp": int(NOW) + 7200,
            "status": {"code": 0, "type": "notstarted"}, "vote": "1", "voteType": 1,
            "odds": {"decimalValue": "2.00", "fractionalValue": "1/1"}}


def odds(price: str) -> dict:
    return {"markets": [{"marketId": 1, "marketName": "Full time", "choices": [
        {"name": "1", "fractionalValue": price}, {"name": "X", "fractionalValue": "2/1"},
        {"name": "2", "fractionalValue": "3/1"}]}]}


def feed(conn: redis.Redis, keys: Keys, entries: int) -> int:
    """Ten predictors whose pages slide by NEW_PER_PAGE tips each fetch; an odds entry after every page."""
    pipe = conn.pipeline(transaction=False)
    for i in range(entries):
        first = (i // 10) * NEW_PER_PAGE
        page = {"predictions": [tip(n, 100000 + n // 2) for n in range(first, first + TIPS_PER_PAGE)]}
        pipe.xadd(keys.fetched, FetchRecord(kind="predictions", subject=f"user{i % 10}", fetched_at=NOW + i,
                                            payload=json.dumps(page)).to_fields())
        event = 100000 + first // 2
        pipe.xadd(keys.fetched, FetchRecord(kind="odds", subject=str(event), fetched_at=NOW + i,
                                            payload=json.dumps(odds("1/1" if i % 2 else "4/5"))).to_fields())
    pipe.execute()
    return entries * 2


def run(name: str, database_url: str, redis_url: str, entries: int) -> None:
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    settings = Settings(_env_file=None, redis_url=redis_url, redis_prefix="bench", database_url=database_url)
    total = feed(conn, Keys.of(settings), entries)
    db = Database(database_url)
    db.migrate()
    processor = Processor(settings, conn, db, name="bench", clock=lambda: NOW)
    started = time.perf_counter()
    processor.run(burst=True)
    elapsed = time.perf_counter() - started
    with db.tx() as tx:
        alerts = tx.one("SELECT COUNT(*) FROM alerts")[0]
    db.close()
    conn.flushdb()
    print(f"{name:<11} {total:>7,} entries in {elapsed:6.2f} s: {total / elapsed:8,.0f} entries/s,"
          f" {alerts:>6,} alerts ({alerts / elapsed:,.0f}/s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        run("sqlite", f"sqlite:///{scratch}/bench.db", args.redis_url, args.entries)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError:
        print("postgresql  not reachable: skipped")
        return 0
    try:
        run("postgresql", f"{args.postgres}?options=-csearch_path%3D{schema}", args.redis_url, args.entries)
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
