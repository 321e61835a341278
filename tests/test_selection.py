"""Which predictors get monitored: filters on all-time stats, leaderboard order, limit, targets."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from fetcher.selection import Filters, Predictor, passes, select_predictors
from shared.models import Ranking, RankingEntry
from shared.settings import Settings

FIXTURE = Path(__file__).parent / "fixtures" / "sofascore" / "vote-ranking.json"
DEFAULTS = Filters.of(Settings.model_construct())  # the documented defaults, whatever the environment says
STRICT = Filters(min_roi=5, min_avg_odds=1.6, min_total_bets=50, min_win_rate=45, limit=10)


@pytest.fixture
def ranking() -> list[RankingEntry]:
    return Ranking.model_validate(json.loads(FIXTURE.read_text(encoding="utf-8"))).ranking


def nicknames(predictors: list[Predictor]) -> list[str | None]:
    return [p.nickname for p in predictors]


def test_defaults_pass_the_first_nine_and_fail_the_last_three(ranking: list[RankingEntry]) -> None:
    verdicts = [passes(entry, DEFAULTS) for entry in ranking]
    assert verdicts == [True] * 9 + [False] * 3


def test_example_filters_from_the_fixture_table(ranking: list[RankingEntry]) -> None:
    chosen = select_predictors(ranking, STRICT)
    assert nicknames(chosen) == ["GoalGuru_88", "Sharp_Mira", "Tactico.ES", "BorderlineBet", "ZeroCurrent"]


@pytest.mark.parametrize(
    ("field", "value", "drops"),
    [
        ("min_roi", 9.0, {"BorderlineBet", "ZeroCurrent", "Tactico.ES"}),  # 8.9 % yield is under 9
        ("min_avg_odds", 2.06, {"GoalGuru_88", "Tactico.ES", "ZeroCurrent"}),
        ("min_total_bets", 51, {"BorderlineBet"}),  # exactly 50 passes at 50, not at 51
        ("min_win_rate", 54, {"Sharp_Mira", "Tactico.ES", "BorderlineBet"}),
    ],
)
def test_each_filter_is_applied(ranking: list[RankingEntry], field: str, value: float, drops: set[str]) -> None:
    base = {"GoalGuru_88", "Sharp_Mira", "Tactico.ES", "BorderlineBet", "ZeroCurrent"}
    filters = replace(STRICT, **{field: value})
    assert set(nicknames(select_predictors(ranking, filters))) == base - drops


def test_null_avg_odds_counts_as_zero(ranking: list[RankingEntry]) -> None:
    no_odds = next(e for e in ranking if e.nickname == "NoOddsNick")
    assert not passes(no_odds, replace(DEFAULTS, min_avg_odds=0.01))
    assert passes(no_odds, replace(DEFAULTS, min_avg_odds=0))


def test_limit_keeps_leaderboard_order(ranking: list[RankingEntry]) -> None:
    chosen = select_predictors(ranking, replace(DEFAULTS, limit=3))
    assert nicknames(chosen) == ["GoalGuru_88", "Sharp_Mira", "Tactico.ES"]
    assert select_predictors(ranking, replace(DEFAULTS, limit=0)) == []


def test_targets_are_added_once_and_keep_their_nickname(ranking: list[RankingEntry]) -> None:
    value_hunter = "64b2a9d1c3e5f70819a2b3c4"  # fails the win-rate filter
    goal_guru = "6a1f0c2e9b3d4e5f60718293"  # already chosen
    stranger = "aaaaaaaaaaaaaaaaaaaaaaaa"  # not on the leaderboard
    chosen = select_predictors(ranking, replace(STRICT, limit=2),
                               [value_hunter, goal_guru, stranger, stranger])
    assert chosen == [
        Predictor(goal_guru, "GoalGuru_88"),
        Predictor("61d4e2f7a8b9c0d1e2f3a4b5", "Sharp_Mira"),
        Predictor(value_hunter, "ValueHunter"),
        Predictor(stranger, None),
    ]


def test_labels_for_log_lines() -> None:
    assert Predictor("6a1f0c2e9b3d4e5f60718293", "GoalGuru_88").label == "GoalGuru_88 (6a1f…)"
    assert Predictor("6a1f0c2e9b3d4e5f60718293").label == "6a1f0c2e9b3d4e5f60718293"
