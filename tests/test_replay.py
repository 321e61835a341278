"""`sofamon replay` against real Redis and both databases: dry runs change nothing, filters pick the right entries."""
from __future__ import annotations

import copy
import io
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import redis

from processor import oddshistory, replay
from processor.replay import Selection, dry_run, parse_when, reinject
from shared.keys import PROCESSOR_GROUP, Keys
from shared.settings import Settings
from shared.storage import Database
from sofamon.cli import main
from tests.fakes.sofascore import REF_NOW, load_fixture
from tests.test_processor import FAR_EVENT, FAR_LOOKAHEAD, GURU, TACTICO, alerts, burst, put

HUNTER = "64b2a9d1c3e5f70819a2b3c4"
OTHER_EVENT = 15981377  # Tactico's and ValueHunter's tips
TABLES = ("predictors", "tips", "odds_history", "alerts")


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, redis_url: str,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = make_settings(database_url=database_url, time_lookahead_hours=FAR_LOOKAHEAD)
    for name, value in (("REDIS_URL", settings.redis_url), ("REDIS_PREFIX", settings.redis_prefix),
                        ("DATABASE_URL", settings.database_url), ("TIME_LOOKAHEAD_HOURS", str(FAR_LOOKAHEAD))):
        monkeypatch.setenv(name, value)
    return settings


def record_run(conn: redis.Redis, settings: Settings, db: Database) -> list[str]:
    """Six fetches a minute apart, processed for real: new tips of three predictors and a line movement."""
    ids = [
        put(conn, settings, "leaderboard", "top", load_fixture("vote-ranking.json"), at=REF_NOW),
        put(conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"), at=REF_NOW + 60),
        put(conn, settings, "predictions", TACTICO, load_fixture(f"user-{TACTICO}-page0.json"), at=REF_NOW + 120),
        put(conn, settings, "predictions", HUNTER, load_fixture(f"user-{HUNTER}-page0.json"), at=REF_NOW + 180),
        put(conn, settings, "odds", str(FAR_EVENT), load_fixture(f"event-{FAR_EVENT}-odds-all.json"), at=REF_NOW + 240),
        put(conn, settings, "odds", str(OTHER_EVENT), load_fixture(f"event-{OTHER_EVENT}-odds-all.json"),
            at=REF_NOW + 300),
    ]
    burst(settings, conn, db)
    return ids


def alert_keys(db: Database) -> list[tuple]:
    return sorted((r[2], r[3], r[1]) for r in alerts(db))


def row_counts(db: Database) -> dict[str, int]:
    with db.tx() as tx:
        return {t: tx.one(f"SELECT COUNT(*) FROM {t}")[0] for t in TABLES}


def redis_dump(conn: redis.Redis) -> dict[bytes, bytes]:
    """Every key and its serialized value: streams, consumer group, RQ queue and jobs, heartbeats."""
    return {k: conn.dump(k) for k in conn.keys("*")}


def test_dry_run_reproduces_the_alerts_of_a_run_and_changes_nothing(
        settings: Settings, redis_conn: redis.Redis, database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    record_run(redis_conn, settings, database)
    recorded = alert_keys(database)
    kinds = {k for _p, _e, k in recorded}
    assert kinds == {"new_tip", "line_movement"} and {p for p, _e, _k in recorded} == {GURU, TACTICO, HUNTER}
    counts, dump = row_counts(database), redis_dump(redis_conn)

    result = dry_run(redis_conn, settings, Selection())
    assert sorted(a.key for a in result.alerts) == recorded
    assert result.selected == {"leaderboard": 1, "predictions": 3, "odds": 2} and not result.unparseable

    assert main(["replay", "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("new_tip", "line_movement"))]
    assert len(lines) == len(recorded)
    far = [line for line in lines if str(FAR_EVENT) in line]
    assert any("GoalGuru_88" in line and "Northbridge FC vs Eastvale United" in line and "new_tip" in line
               for line in far)
    assert any(line.startswith("line_movement") and "@2.20 -> @1.80 (-18.2%)" in line for line in far)
    assert f"{len(recorded)} alert(s) would be produced" in out

    assert row_counts(database) == counts
    assert redis_dump(redis_conn) == dump


def test_predictor_filter_keeps_their_tips_the_leaderboard_and_odds(
        settings: Settings, redis_conn: redis.Redis, database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    record_run(redis_conn, settings, database)
    result = dry_run(redis_conn, settings, Selection(predictors=frozenset({TACTICO})))
    assert result.selected == {"leaderboard": 1, "predictions": 1, "odds": 2}
    assert {a.predictor_id for a in result.alerts} == {TACTICO}
    assert sorted(a.key for a in result.alerts) == [k for k in alert_keys(database) if k[0] == TACTICO]

    assert main(["replay", "--dry-run", "--predictor", TACTICO, "--predictor", HUNTER]) == 0
    out = capsys.readouterr().out
    assert "Tactico.ES" in out and "ValueHunter" in out and "GoalGuru_88" not in out
    assert "2 leaderboard" not in out and "2 predictions" in out


def test_id_range_is_inclusive(settings: Settings, redis_conn: redis.Redis, database: Database,
                               capsys: pytest.CaptureFixture[str]) -> None:
    ids = record_run(redis_conn, settings, database)
    result = dry_run(redis_conn, settings, Selection(first=ids[2], last=ids[3]))
    assert (result.first_id, result.last_id) == (ids[2], ids[3])
    assert result.selected == {"predictions": 2}
    assert {a.predictor_id for a in result.alerts} == {TACTICO, HUNTER}
    assert all(a.kind == "new_tip" for a in result.alerts)

    assert main(["replay", "--dry-run", "--from", ids[4]]) == 0
    out = capsys.readouterr().out
    # Odds alone, on an empty database: no tip is known, so nothing moves.
    assert "dry run: 2 entries replayed" in out and "2 odds" in out and "0 alert(s)" in out


def test_time_window_on_fetched_at(settings: Settings,
                                   redis_conn: redis.Redis, database: Database, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    ids = record_run(redis_conn, settings, database)
    start = datetime.fromtimestamp(REF_NOW + 90, timezone.utc)
    # An offset in the datetime wins; a naive one is read in POLL_TIMEZONE.
    assert main(["replay", "--dry-run", "--since", start.isoformat(), "--until", "2026-11-22T12:03:00Z"]) == 0
    out = capsys.readouterr().out
    assert f"dry run: 2 entries replayed ({ids[2]} .. {ids[3]})" in out

    monkeypatch.setenv("POLL_TIMEZONE", "Europe/Berlin")
    assert main(["replay", "--dry-run", "--since", "2026-11-22T13:03:30"]) == 0
    assert f"dry run: 2 entries replayed ({ids[4]} .. {ids[5]})" in capsys.readouterr().out


def test_relative_times(settings: Settings, redis_conn: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    board = load_fixture("vote-ranking.json")
    old = put(redis_conn, settings, "leaderboard", "top", board, at=now - 3 * 3600)
    new = put(redis_conn, settings, "leaderboard", "top", board, at=now - 3600)
    assert main(["replay", "--dry-run", "--since", "2h"]) == 0
    assert f"1 entries replayed ({new} .. {new})" in capsys.readouterr().out
    assert main(["replay", "--dry-run", "--until", "120m"]) == 0
    assert f"1 entries replayed ({old} .. {old})" in capsys.readouterr().out
    assert main(["replay", "--dry-run", "--since", "1d"]) == 0
    assert "2 entries replayed" in capsys.readouterr().out

    tz = ZoneInfo("Europe/London")
    assert parse_when("30m", 10_000, tz) == 10_000 - 1800
    assert parse_when("1.5h", 10_000, tz) == 10_000 - 5400
    assert parse_when("2026-11-22T12:00", 0, tz) == REF_NOW
    assert parse_when("2026-11-22T12:00+01:00", 0, tz) == REF_NOW - 3600
    with pytest.raises(ValueError):
        parse_when("yesterday", 0, tz)
    assert main(["replay", "--dry-run", "--since", "yesterday"]) == 2


def test_unparseable_entries_are_counted_and_reported(settings: Settings, redis_conn: redis.Redis,
                                                     database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.of(settings)
    bad = [
        redis_conn.xadd(keys.fetched, {"kind": "predictions", "subject": GURU}).decode(),  # no payload
        put(redis_conn, settings, "predictions", GURU, {"predictions": "not a list"}),
        redis_conn.xadd(keys.fetched, {"kind": "odds", "subject": "1", "fetched_at": "1",
                                       "payload": "{not json"}).decode(),
    ]
    put(redis_conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"))
    result = dry_run(redis_conn, settings, Selection())
    assert [i for i, _reason in result.unparseable] == bad and all(r for _i, r in result.unparseable)
    assert result.selected == {"predictions": 1} and len(result.alerts) == 2

    assert main(["replay", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 unparseable entries skipped:" in out and all(i in out for i in bad)

    length = redis_conn.xlen(keys.fetched)
    assert main(["replay", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "re-injected 1 entries" in out and "3 unparseable entries skipped (not re-injected)" in out
    assert redis_conn.xlen(keys.fetched) == length + 1


def test_reinjection_copies_entries_and_dedup_keeps_it_quiet(
        settings: Settings, redis_conn: redis.Redis, database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.of(settings)
    ids = record_run(redis_conn, settings, database)
    recorded = alert_keys(database)
    originals = redis_conn.xrange(keys.fetched)

    assert main(["replay", "--yes"]) == 0
    assert f"re-injected {len(ids)} entries onto {keys.fetched}" in capsys.readouterr().out
    copies = redis_conn.xrange(keys.fetched)[len(ids):]
    # fetched_at preserved; each copy says which entry it copies
    assert [fields for _i, fields in copies] == [{**f, b"replayed_from": i} for i, f in originals]

    burst(settings, redis_conn, database, name="p2")
    assert alert_keys(database) == recorded
    assert redis_conn.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 0
    assert redis_conn.xlen(keys.dead_letters) == 0
    group = next(g for g in redis_conn.xinfo_groups(keys.fetched) if g["name"] == PROCESSOR_GROUP.encode())
    assert group["entries-read"] == 2 * len(ids)  # the processor did handle the copies


def test_reinjection_with_filters_and_an_open_end_never_reads_its_own_copies(
        settings: Settings, redis_conn: redis.Redis, database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = Keys.of(settings)
    ids = record_run(redis_conn, settings, database)
    result = reinject(redis_conn, settings, Selection(predictors=frozenset({GURU})))
    assert result.reinjected == 4  # leaderboard, Guru's predictions, both odds
    assert [f[b"subject"] for _i, f in redis_conn.xrange(keys.fetched)[len(ids):]] == \
        [b"top", GURU.encode(), str(FAR_EVENT).encode(), str(OTHER_EVENT).encode()]

    # Small batches and an end far beyond the stream: copies land inside the id range being read.
    monkeypatch.setattr(replay, "BATCH", 2)
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(
        reinject(redis_conn, settings, Selection(last="99999999999999-0")).reinjected), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive() and done == [len(ids)]  # the first replay's 4 copies are left out


def test_reinjecting_old_records_never_rewinds_statistics_or_prices(
        settings: Settings, redis_conn: redis.Redis, database: Database, capsys: pytest.CaptureFixture[str]) -> None:
    board = load_fixture("vote-ranking.json")
    newer = copy.deepcopy(board)
    newer["ranking"][0]["nickname"] = "GoalGuru_99"
    newer["ranking"][0]["voteStatistics"]["allTime"]["total"] = "413"
    moved = load_fixture(f"event-{FAR_EVENT}-odds-all.json")  # Guru's home win 6/5 -> 4/5: -18 %
    back = copy.deepcopy(moved)
    back["markets"][0]["choices"][0]["fractionalValue"] = "6/5"  # back at the tip's price: armed again
    put(redis_conn, settings, "leaderboard", "top", board, at=REF_NOW)
    put(redis_conn, settings, "predictions", GURU, load_fixture(f"user-{GURU}-page0.json"), at=REF_NOW + 60)
    put(redis_conn, settings, "odds", str(FAR_EVENT), moved, at=REF_NOW + 120)
    put(redis_conn, settings, "leaderboard", "top", newer, at=REF_NOW + 600)
    put(redis_conn, settings, "odds", str(FAR_EVENT), back, at=REF_NOW + 700)
    burst(settings, redis_conn, database)

    def state() -> tuple:
        with database.tx() as tx:
            guru = tx.one("SELECT nickname, stats, updated_at FROM predictors WHERE id = ?", (GURU,))
            latest = oddshistory.latest(tx, FAR_EVENT)
            history = tx.all("SELECT market_id, choice_group, choice, fractional, observed_at FROM odds_history"
                             " ORDER BY id")
            armed = tx.all("SELECT tip_key, movement_armed FROM tips ORDER BY tip_key")
        return guru, latest, history, armed, alert_keys(database)

    before = state()
    assert before[0][0] == "GoalGuru_99" and before[1][(1, None, "1")] == "6/5"
    assert [k for _p, _e, k in before[4]].count("line_movement") == 1

    # The old leaderboard, tips and odds, re-injected and processed again.
    assert main(["replay", "--since", str(REF_NOW - 1), "--until", str(REF_NOW + 300)]) == 0
    assert "re-injected 3 entries" in capsys.readouterr().out
    burst(settings, redis_conn, database, name="p2")
    assert state() == before
    assert redis_conn.xpending(Keys.of(settings).fetched, PROCESSOR_GROUP)["pending"] == 0


def test_health_entries_only_when_asked(settings: Settings, redis_conn: redis.Redis, database: Database,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.of(settings)
    put(redis_conn, settings, "health", "upstream_blocked", {"message": "HTTP 403 challenge; paused 60 s"})
    assert dry_run(redis_conn, settings, Selection()).alerts == []
    result = dry_run(redis_conn, settings, Selection(kinds=frozenset({"health"})))
    assert [a.kind for a in result.alerts] == ["health"]
    assert main(["replay", "--yes"]) == 0 and redis_conn.xlen(keys.fetched) == 1
    assert main(["replay", "--kind", "health"]) == 0 and redis_conn.xlen(keys.fetched) == 2
    capsys.readouterr()


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_replay_without_selection_asks_first_or_needs_yes(
        settings: Settings, redis_conn: redis.Redis, database: Database, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.of(settings)
    ids = record_run(redis_conn, settings, database)
    # Not on a terminal (a script, cron): refused with one line, nothing re-injected.
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["replay"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--yes" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert redis_conn.xlen(keys.fetched) == len(ids)
    # On a terminal it asks; anything but yes leaves the stream alone.
    monkeypatch.setattr("sys.stdin", FakeTty("n\n"))
    assert main(["replay"]) == 1
    assert f"({len(ids)} entries" in capsys.readouterr().err and redis_conn.xlen(keys.fetched) == len(ids)
    monkeypatch.setattr("sys.stdin", FakeTty("y\n"))
    assert main(["replay"]) == 0
    assert f"re-injected {len(ids)} entries" in capsys.readouterr().out
    # A selection, or a dry run (it changes nothing), needs no confirmation.
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["replay", "--dry-run"]) == 0
    assert main(["replay", "--since", "1d"]) == 0
    capsys.readouterr()


def test_replays_never_take_their_own_copies(settings: Settings, redis_conn: redis.Redis, database: Database,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.of(settings)
    ids = record_run(redis_conn, settings, database)
    before = sorted(a.key for a in dry_run(redis_conn, settings, Selection()).alerts)
    for _round in range(3):
        assert main(["replay", "--yes"]) == 0
        assert f"re-injected {len(ids)} entries" in capsys.readouterr().out
    # Each replay copied the originals only: the stream grew by them, not by its own copies.
    entries = redis_conn.xrange(keys.fetched)
    assert len(entries) == 4 * len(ids)
    assert [f[b"replayed_from"].decode() for _i, f in entries[len(ids):]] == ids * 3
    # A dry run counts every fetch once, and says it left the copies out.
    result = dry_run(redis_conn, settings, Selection())
    assert result.total == len(ids) and result.copies_skipped == 3 * len(ids)
    assert sorted(a.key for a in result.alerts) == before
    assert main(["replay", "--dry-run"]) == 0
    assert f"{3 * len(ids)} copies re-injected by earlier replays left out" in capsys.readouterr().out
    # The processor takes the copies like any entry: the extra field is ignored, nothing is dead-lettered.
    burst(settings, redis_conn, database, name="p2")
    assert redis_conn.xlen(keys.dead_letters) == 0
    assert redis_conn.xpending(keys.fetched, PROCESSOR_GROUP)["pending"] == 0


def test_progress_bar_on_a_terminal_for_long_replays_only(settings: Settings, redis_conn: redis.Redis) -> None:
    ids = [put(redis_conn, settings, "leaderboard", "top", {"ranking": []}, at=REF_NOW + i)
           for i in range(replay.PROGRESS_AFTER + 50)]
    tty, pipe = FakeTty(), io.StringIO()
    assert dry_run(redis_conn, settings, Selection(), progress_out=tty).total == len(ids)
    assert dry_run(redis_conn, settings, Selection(), progress_out=pipe).total == len(ids)
    # The bar (rich) counts every entry read, those before it appeared included, and shows the position.
    assert f"{len(ids):,} entries" in tty.getvalue() and "100%" in tty.getvalue()
    assert pipe.getvalue() == ""
    short = FakeTty()
    dry_run(redis_conn, settings, Selection(last=ids[replay.PROGRESS_AFTER - 1]), progress_out=short)
    assert short.getvalue() == ""
