"""Delivery benchmark: a burst of alerts through the notifier against the fake Discord.

    .venv/bin/python bench/delivery.py [--alerts 500] [--redis-url redis://127.0.0.1:6379/14]

The fake has Discord's default-like limits (5 requests per 2 s per webhook, and the hidden
30 messages a minute per channel), so the result is bounded by the channel limit: about
30 messages, i.e. up to 300 alerts, a minute. Prints alerts delivered per minute, messages
sent and 429s received. Uses a scratch SQLite file and the Redis db of BENCH_REDIS_URL (default 14), which
it flushes; it touches nothing else. Takes a couple of minutes.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from notifier.main import run  # noqa: E402
from shared import outbox  # noqa: E402
from shared.alerts import MatchInfo, NewTipAlert, PredictorInfo, StatsSummary, TipLine  # noqa: E402
from shared.jobs import alerts_queue, enqueue_alert  # noqa: E402
from shared.redisconn import connect  # noqa: E402
from shared.settings import Settings  # noqa: E402
from shared.storage import Database  # noqa: E402
from shared.webhooks import MAIN_WEBHOOK  # noqa: E402
from tests.fakes.discord import FakeDiscord  # noqa: E402


def alert(i: int) -> NewTipAlert:
    stats = StatsSummary(total=150, win_rate=57.3, yield_pct=9.1, profit=13.7, avg_odds=2.02)
    return NewTipAlert(
        predictor=PredictorInfo(id=f"bench{i % 10}", nickname=f"Bench predictor {i % 10}", all_time=stats,
                                current=stats),
        match=MatchInfo(event_id=50_000 + i, home=f"Home team {i}", away=f"Away team {i}", sport_slug="football",
                        event_slug=f"home-team-{i}-away-team-{i}", custom_id=f"b{i}", start_ts=int(time.time()) + 7200),
        tips=[TipLine(market="Full time", pick=f"Home team {i} to win", odds=1.9)],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sofamon-bench-") as scratch, \
            FakeDiscord(bucket_limit=5, bucket_window=2.0, channel_per_minute=30) as fake:
        settings = Settings(_env_file=None, redis_url=args.redis_url, redis_prefix="bench",
                            database_url=f"sqlite:///{scratch}/bench.db", discord_webhook_url=fake.url(),
                            discord_health_webhook_url=None, discord_messages_per_minute=30, log_level="WARNING")
        conn = connect(settings)
        conn.flushdb()
        db = Database(settings.database_url)
        db.migrate()
        queue = alerts_queue(conn)
        for i in range(args.alerts):
            with db.tx() as tx:
                alert_id = outbox.insert(tx, alert(i), webhook=MAIN_WEBHOOK, created_at=time.time())
            enqueue_alert(queue, alert_id, retry_intervals=settings.notifier_retry_intervals)
        print(f"{args.alerts} alerts queued; delivering (the channel allows ~30 messages a minute)...", flush=True)
        started = time.monotonic()
        code = run(settings, burst=True)
        elapsed = time.monotonic() - started
        embeds = len(fake.accepted_embeds())
        counts = outbox.count_by_state(db)
        db.close()
        print(f"exit status:            {code}")
        print(f"elapsed:                {elapsed:.1f} s")
        print(f"alerts delivered:       {embeds} (outbox: {counts})")
        print(f"alerts per minute:      {embeds / elapsed * 60:.0f}")
        print(f"messages sent:          {len(fake.accepted)}")
        print(f"429s received:          {fake.count_429}")
        conn.flushdb()
        conn.close()
    return 0 if code == 0 and fake.count_429 == 0 and embeds == args.alerts else 1


if __name__ == "__main__":
    raise SystemExit(main())
