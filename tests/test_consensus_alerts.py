"""Consensus alerts on both databases: through the processor (stream entries in, alerts out) and, on SQLite,
through the whole pipeline against the fakes (the crowd's votes asked once, the alert in Discord)."""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from processor.main import Processor
from shared import votes
from shared.keys import Keys
from shared.models import FetchRecord
from shared.settings import Settings
from shared.storage import Database
from tests.conftest import TEST_REDIS_URL
from tests.fakes.discord import FakeDiscord
from tests.fakes.sofascore import REF_NOW, FakeSofascore, load_fixture
from tests.test_end_to_end import sofamon

TACTICO = "5e8d7c6b5a4f3e2d1c0b9a87"  # the draw @ 3.30 on EVENT (fixture)
HUNTER = "64b2a9d1c3e5f70819a2b3c4"  # the away win @ 2.75 on EVENT (fixture): the dissent
MIRA = "61d4e2f7a8b9c0d1e2f3a4b5"
BORDERLINE = "60e1f2a3b4c5d6e7f8091a2b"
RAY = "62ab34cd56ef78a9b0c1d2e3"
HAL = "5f90ab12cd34ef5678901a2b"
EVENT = 15981377
LOOKAHEAD = 24 * 200  # the fixtures' matches are months after REF_NOW


def draw_tip(tip_id: str, odds: str, fractional: str) -> dict[str, Any]:
    """A draw on EVENT, as Tactico's tip on it with another id and price."""
    tactico = load_fixture(f"user-{TACTICO}-page0.json")["predictions"]
    tip = next(p for p in tactico if p["eventId"] == EVENT)
    return {**tip, "id": tip_id, "odds": {"decimalValue": odds, "fractionalValue": fractional}}


def page(*tips: dict[str, Any]) -> dict[str, Any]:
    return {"predictions": list(tips), "hasNextPage": False}


# -- through the processor --------------------------------------------------------------------------------
@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url, time_lookahead_hours=LOOKAHEAD)


def put(conn: redis.Redis, settings: Settings, kind: str, subject: str, payload: Any, at: float) -> None:
    record = FetchRecord(kind=kind, subject=subject, fetched_at=at, payload=json.dumps(payload))
    conn.xadd(Keys.of(settings).fetched, record.to_fields())


def consensus_alerts(db: Database) -> list[dict[str, Any]]:
    with db.read() as tx:
        rows = tx.all("SELECT payload FROM alerts WHERE kind = 'consensus' ORDER BY id")
    return [json.loads(payload) for (payload,) in rows]


def process(settings: Settings, conn: redis.Redis, db: Database) -> None:
    assert Processor(settings, conn, db, name="p1", clock=lambda: REF_NOW).run(burst=True) == 0


def wanted(conn: redis.Redis, settings: Settings) -> list[str]:
    return [m.decode() for m in conn.zrange(Keys.of(settings).votes_wanted, 0, -1)]


def test_three_on_a_pick_make_one_alert_a_fourth_one_more_a_re_read_none(
        settings: Settings, redis_conn: redis.Redis, database: Database) -> None:
    votes_payload = load_fixture(f"event-{EVENT}-votes.json")
    put(redis_conn, settings, "leaderboard", "top", load_fixture("vote-ranking.json"), REF_NOW)
    put(redis_conn, settings, "odds", str(EVENT), load_fixture(f"event-{EVENT}-odds-all.json"), REF_NOW)
    put(redis_conn, settings, "predictions", TACTICO, load_fixture(f"user-{TACTICO}-page0.json"), REF_NOW + 1)
    put(redis_conn, settings, "predictions", HUNTER, load_fixture(f"user-{HUNTER}-page0.json"), REF_NOW + 2)
    put(redis_conn, settings, "predictions", MIRA, page(draw_tip("mira-x", "3.40", "12/5")), REF_NOW + 3)
    process(settings, redis_conn, database)
    assert wanted(redis_conn, settings) == []  # two on the draw: no consensus

    # A third on the draw: the crowd's votes are wanted; the alert waits for them.
    put(redis_conn, settings, "predictions", BORDERLINE, page(draw_tip("border-x", "3.20", "11/5")), REF_NOW + 4)
    process(settings, redis_conn, database)
    assert wanted(redis_conn, settings) == [str(EVENT)] and consensus_alerts(database) == []

    put(redis_conn, settings, "votes", str(EVENT), votes_payload, REF_NOW + 5)
    process(settings, redis_conn, database)
    [alert] = consensus_alerts(database)
    assert (alert["market"], alert["pick"], alert["best_odds"]) == ("Full time", "Draw", 3.7)
    assert [(m["predictor"]["nickname"], m["odds"], m["joined"]) for m in alert["members"]] == [
        ("Tactico.ES", 3.3, True), ("Sharp_Mira", 3.4, True), ("BorderlineBet", 3.2, True)]
    total = 8779 + 11223 + 98254
    assert [(c["pick"], c["pct"]) for c in alert["crowd"]] == [
        ("Real Costa Azul to win", round(100 * 8779 / total, 1)), ("Draw", round(100 * 11223 / total, 1)),
        ("Atlético Serrania to win", round(100 * 98254 / total, 1))]
    assert [(d["nickname"], d["pick"], d["odds"]) for d in alert["dissent"]] == [
        ("ValueHunter", "Atlético Serrania to win", 2.75)]

    # The same pages and votes again (a re-read, a replay): nothing more.
    put(redis_conn, settings, "predictions", MIRA, page(draw_tip("mira-x", "3.40", "12/5")), REF_NOW + 6)
    put(redis_conn, settings, "predictions", BORDERLINE, page(draw_tip("border-x", "3.20", "11/5")), REF_NOW + 6)
    put(redis_conn, settings, "votes", str(EVENT), votes_payload, REF_NOW + 7)
    process(settings, redis_conn, database)
    assert len(consensus_alerts(database)) == 1

    # A fourth joins: one more alert, the newcomer marked.
    put(redis_conn, settings, "predictions", RAY, page(draw_tip("ray-x", "3.50", "5/2")), REF_NOW + 8)
    put(redis_conn, settings, "votes", str(EVENT), votes_payload, REF_NOW + 9)
    process(settings, redis_conn, database)
    second = consensus_alerts(database)[1]
    assert [(m["predictor"]["nickname"], m["joined"]) for m in second["members"]] == [
        ("Tactico.ES", False), ("Sharp_Mira", False), ("BorderlineBet", False), ("ReturningRay", True)]

    # A fifth, whose votes come only after kick-off: never announced.
    start = draw_tip("x", "1", "1")["startDateTimestamp"]
    put(redis_conn, settings, "predictions", HAL, page(draw_tip("hal-x", "3.60", "13/5")), REF_NOW + 10)
    put(redis_conn, settings, "votes", str(EVENT), votes_payload, start + 60)
    process(settings, redis_conn, database)
    assert len(consensus_alerts(database)) == 2
    with database.read() as tx:
        assert tx.one("SELECT COUNT(*) FROM consensus_members WHERE alert_id IS NULL") == (0,)


def test_no_consensus_alerts_when_turned_off(make_settings: Callable[..., Settings], database_url: str,
                                             redis_conn: redis.Redis) -> None:
    settings = make_settings(database_url=database_url, time_lookahead_hours=LOOKAHEAD, consensus_min_predictors=0)
    db = Database(settings.database_url)
    db.migrate()
    put(redis_conn, settings, "leaderboard", "top", load_fixture("vote-ranking.json"), REF_NOW)
    for n, who in enumerate((TACTICO, MIRA, BORDERLINE, RAY)):
        put(redis_conn, settings, "predictions", who, page(draw_tip(f"{who}-x", "3.40", "12/5")), REF_NOW + n)
    process(settings, redis_conn, db)
    assert wanted(redis_conn, settings) == [] and consensus_alerts(db) == []
    db.close()


# -- the whole pipeline, against the fakes --------------------------------------------------------------------
@pytest.fixture
def fakes() -> Iterator[tuple[FakeSofascore, FakeDiscord]]:
    with FakeSofascore() as sofascore, FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as discord:
        yield sofascore, discord


def test_the_consensus_reaches_discord_with_the_crowd_asked_once(fakes: tuple[FakeSofascore, FakeDiscord],
                                                                 sqlite_url: str, redis_url: str) -> None:
    sofascore, discord = fakes
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "SOFASCORE_BASE_URL": sofascore.base_url, "DISCORD_WEBHOOK_URL": discord.url(),
           "REDIS_URL": TEST_REDIS_URL, "REDIS_PREFIX": "consensus-e2e", "DATABASE_URL": sqlite_url,
           "TIME_LOOKAHEAD_HOURS": str(LOOKAHEAD), "LOG_LEVEL": "INFO"}
    sofascore.add_prediction(MIRA, draw_tip("mira-x", "3.40", "12/5"))
    sofascore.add_prediction(BORDERLINE, draw_tip("border-x", "3.20", "11/5"))

    def round_() -> list[dict[str, Any]]:
        before = len(discord.accepted_embeds())
        for command in (("fetch", "--once"), ("process", "--burst"), ("notify", "--burst")):
            sofamon(env, *command)
        return discord.accepted_embeds()[before:]

    def titles(embeds: list[dict[str, Any]]) -> list[str]:
        return sorted(e["title"] for e in embeds if e["title"].startswith("Consensus"))

    assert titles(round_()) == []  # the new tips; the consensus waits for the crowd's votes
    assert sofascore.hits(f"/event/{EVENT}/votes") == 0
    consensus = [e for e in round_() if e["title"].startswith("Consensus")]
    match = "Real Costa Azul vs Atlético Serrania"
    assert [e["title"] for e in consensus] == [f"Consensus: 3 top predictors on Draw (Full time): {match}"]
    body = consensus[0]["description"]
    assert "Sharp\\_Mira" in body or "Sharp_Mira" in body
    assert "Sofascore users:" in body and "Dissent: ValueHunter" in body
    assert sofascore.hits(f"/event/{EVENT}/votes") == 1

    sofascore.add_prediction(RAY, draw_tip("ray-x", "3.50", "5/2"))
    round_()
    assert titles(round_()) == [f"Consensus: 4 top predictors on Draw (Full time): {match}"]
    assert titles(round_()) == [] and sofascore.hits(f"/event/{EVENT}/votes") == 2
    assert discord.count_429 == 0
