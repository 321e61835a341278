"""Bounds at the boundary (pure): what a Sofascore value may be before it reaches the database or an alert."""
from __future__ import annotations

import json
from typing import Any

import pytest

from shared.models import EventOdds, PredictionsPage, Ranking, validate_payload
from tests.fakes.sofascore import load_fixture

GURU = "6a1f0c2e9b3d4e5f60718293"


def _page_with(**changes: Any) -> PredictionsPage:
    page = load_fixture(f"user-{GURU}-page0.json")
    page["predictions"][0].update(changes)
    return validate_payload(PredictionsPage, json.dumps(page))


@pytest.mark.parametrize("changes, field", [
    ({"eventId": 2**63}, "eventId"),
    ({"eventId": -(2**63) - 1}, "eventId"),
    ({"voteType": 1001}, "voteType"),
    ({"voteType": -1}, "voteType"),
    ({"id": "x" * 65}, "id"),
    ({"id": 2**64}, "id"),
    ({"vote": "1" * 65}, "vote"),
    ({"startDateTimestamp": 10**12}, "startDateTimestamp"),
    ({"status": {"type": "t" * 65}}, "status.type"),
    ({"odds": {"fractionalValue": "1" * 65}}, "odds.fractionalValue"),
])
def test_an_item_out_of_bounds_is_left_out_naming_its_field(changes: dict[str, Any], field: str) -> None:
    page = _page_with(**changes)
    assert len(page.predictions) == 3 and len(page.skipped) == 1
    assert page.skipped[0].startswith(f"predictions[0].{field}: ") and len(page.skipped[0]) < 200


def test_the_largest_values_within_bounds_are_kept() -> None:
    page = _page_with(eventId=2**63 - 1, voteType=1000, id="i" * 64, vote="v" * 64)
    assert not page.skipped
    assert page.predictions[0].event_id == 2**63 - 1 and page.predictions[0].id == "i" * 64
    assert _page_with(id=2**63 - 1).predictions[0].id == str(2**63 - 1)


def test_control_characters_are_removed_from_text() -> None:
    tip = _page_with(homeTeamName="North\x00bridge\x1b FC\x7f\x85", id="6a2b\x00", vote="1\n",
                     awayTeamName="\x00\x01").predictions[0]
    assert (tip.home_team_name, tip.id, tip.vote, tip.away_team_name) == ("Northbridge FC", "6a2b", "1", "Away")
    # Measured after cleaning: NULs do not push a real id over its cap.
    assert _page_with(id="a" * 64 + "\x00" * 10).predictions[0].id == "a" * 64


def test_a_lone_surrogate_costs_neither_the_page_nor_the_tip() -> None:
    text = json.dumps(load_fixture(f"user-{GURU}-page0.json")).replace("Northbridge FC", "North\\ud800bridge FC")
    page = validate_payload(PredictionsPage, text)
    assert len(page.predictions) == 4 and page.predictions[0].home_team_name == "Northbridge FC"


def test_an_overlong_label_is_shortened_and_a_link_part_dropped() -> None:
    tip = _page_with(homeTeamName="H" * 500, eventSlug="s" * 201, customId="c" * 300).predictions[0]
    assert len(tip.home_team_name) == 200 and tip.home_team_name.endswith("…")
    assert tip.event_slug is None and tip.custom_id is None  # the alert links without them


def test_leaderboard_and_odds_bounds() -> None:
    board = load_fixture("vote-ranking.json")
    board["ranking"][0]["id"] = "r" * 65
    board["ranking"][1]["nickname"] = "Guru\x00" + "n" * 300
    ranking = Ranking.model_validate(board)
    assert len(ranking.ranking) == len(board["ranking"]) - 1 and ranking.skipped[0].startswith("ranking[0].id: ")
    assert ranking.ranking[0].nickname.startswith("Gurun") and len(ranking.ranking[0].nickname) == 200

    odds = load_fixture("event-15981204-odds-all.json")
    odds["markets"][0]["marketId"] = 10**6
    odds["markets"][1]["choices"][0]["name"] = "n" * 201
    parsed = EventOdds.model_validate(odds)
    assert len(parsed.markets) == len(odds["markets"]) - 1
    market, choice = parsed.all_skipped
    assert market.startswith("markets[0].marketId: ") and market.endswith(f"(item id {odds['markets'][0]['id']})")
    assert choice.startswith(f"market {odds['markets'][1]['marketId']}: choices[0].name: ")
