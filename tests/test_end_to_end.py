"""The three commands against the local fakes: exactly the alerts the rules call for, and no others."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import TEST_REDIS_URL
from tests.fakes.discord import FakeDiscord
from tests.fakes.sofascore import FakeSofascore, ref_ts

GURU = "6a1f0c2e9b3d4e5f60718293"
TACTICO = "5e8d7c6b5a4f3e2d1c0b9a87"
HUNTER = "64b2a9d1c3e5f70819a2b3c4"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSofascore, FakeDiscord]]:
    with FakeSofascore() as sofascore, FakeDiscord(bucket_limit=5, bucket_window=1.0, channel_per_minute=None) as discord:
        yield sofascore, discord


def sofamon(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "sofamon.cli", *args], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"sofamon {' '.join(args)} failed:\n{result.stderr[-3000:]}"
    return result


def one_round(env: dict[str, str], discord: FakeDiscord) -> list[dict[str, Any]]:
    before = len(discord.accepted_embeds())
    for command in (("fetch", "--once"), ("process", "--burst"), ("notify", "--burst")):
        sofamon(env, *command)
    return discord.accepted_embeds()[before:]


def summary(embeds: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(kind, predictor, match url) of each embed, sorted: the set of alerts a user received."""
    rows = []
    for embed in embeds:
        kind = "new" if "New tip" in embed["title"] else "move" if "Line movement" in embed["title"] else "?"
        rows.append((kind, embed["author"]["name"], embed["url"]))
    return sorted(rows)


@pytest.mark.parametrize("database", ["sqlite_url", "pg_url"])
def test_three_rounds_send_exactly_the_expected_alerts(database: str, request: pytest.FixtureRequest,
                                                      fakes: tuple[FakeSofascore, FakeDiscord],
                                                      redis_url: str) -> None:
    sofascore, discord = fakes
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "SOFASCORE_BASE_URL": sofascore.base_url,
        "DISCORD_WEBHOOK_URL": discord.url(),
        "REDIS_URL": TEST_REDIS_URL,
        "REDIS_PREFIX": "e2e",
        "DATABASE_URL": request.getfixturevalue(database),
        # Far enough to reach the fixtures' matches ~4 months ahead.
        "TIME_LOOKAHEAD_HOURS": str(24 * 140),
        "LOG_LEVEL": "INFO",
    }
    football = "https://www.sofascore.com/football/match"
    first = one_round(env, discord)
    assert summary(first) == sorted([
        ("new", "GoalGuru_88", f"{football}/kingsport-rovers-ashford-town/zKdsLwe#id:15979901"),
        ("new", "GoalGuru_88", f"{football}/northbridge-fc-eastvale-united/pRkbsQx#id:15981204"),
        ("new", "Tactico.ES", f"{football}/real-costa-azul-atletico-serrania/dQcsjZr#id:15981377"),
        ("new", "ValueHunter", f"{football}/real-costa-azul-atletico-serrania/dQcsjZr#id:15981377"),
        ("new", "ValueHunter", "https://www.sofascore.com/tennis/match/" + _tennis_slug(sofascore)),
    ])
    two_tips = next(e for e in first if e["url"].endswith("15981204"))
    assert "2.20" in str(two_tips) and "1.80" in str(two_tips)

    # Round two: a new tip, and a price that moved 21 % (Tactico's draw 23/10 -> 3/1).
    new_tip = dict(sofascore.predictions[TACTICO][0][0], id="6a2c00000000000000000001", eventId=15990001,
                   customId="nEwTiP1", eventSlug="new-home-new-away", homeTeamName="New Home",
                   awayTeamName="New Away", startDateTimestamp=ref_ts(5 * 3600), vote="1", voteType=1,
                   odds={"decimalValue": "1.50", "fractionalValue": "1/2"})
    sofascore.add_prediction(TACTICO, new_tip)
    sofascore.set_price(15981377, 1, "X", "3/1")
    second = one_round(env, discord)
    assert summary(second) == sorted([
        ("new", "Tactico.ES", f"{football}/new-home-new-away/nEwTiP1#id:15990001"),
        # GoalGuru's home win, 6/5 -> 4/5 in the fixture: -18.2 %.
        ("move", "GoalGuru_88", f"{football}/northbridge-fc-eastvale-united/pRkbsQx#id:15981204"),
        ("move", "Tactico.ES", f"{football}/real-costa-azul-atletico-serrania/dQcsjZr#id:15981377"),
    ])
    moved = next(e for e in second if e["author"]["name"] == "GoalGuru_88")
    assert "2.20 → 1.80" in str(moved) and "18.2" in str(moved)

    # Round three: nothing new, nothing moved further: nothing is sent.
    assert one_round(env, discord) == []
    assert discord.count_429 == 0


def _tennis_slug(sofascore: FakeSofascore) -> str:
    tip = next(p for p in sofascore.predictions[HUNTER][0] if p["eventId"] == 15986543)
    return f"{tip['eventSlug']}/{tip['customId']}#id:15986543"
