"""The request budget as a pure rule with a fixed clock: the window, the waits, which requests go first."""
from __future__ import annotations

from dataclasses import dataclass

from fetcher.budget import RequestBudget, by_priority


def test_allowance_is_the_limit_less_the_last_60_seconds() -> None:
    budget = RequestBudget(10)
    assert budget.allowance(0) == 10
    budget.spend(7, finished_at=5)
    assert budget.allowance(30) == 3
    budget.spend(3, finished_at=30)
    assert budget.allowance(64.9) == 0
    assert budget.wait_seconds(64.9) == 5 - 64.9 + 60  # until the first batch is 60 s old
    assert budget.allowance(65) == 7
    assert budget.allowance(90) == 10


def test_waits_nothing_while_there_is_room() -> None:
    budget = RequestBudget(2)
    budget.spend(1, finished_at=0)
    assert budget.wait_seconds(1) == 0


def test_no_limit() -> None:
    budget = RequestBudget(0)
    budget.spend(10_000, finished_at=0)
    assert budget.allowance(0) >= 10_000 and budget.wait_seconds(0) == 0
    assert budget.spread_minutes(10_000, 0) == 0


def test_spread_minutes_counts_whole_windows_beyond_what_starts_now() -> None:
    budget = RequestBudget(60)
    assert budget.spread_minutes(60, 0) == 0
    assert budget.spread_minutes(61, 0) == 1
    assert budget.spread_minutes(300, 0) == 4


@dataclass
class J:
    name: str
    kind: str
    kickoff: float | None = None
    last_fetch: float | None = None


def test_near_odds_then_longest_unpolled_predictors_then_far_odds() -> None:
    now = 1000.0
    jobs = [
        J("far odds", "odds", kickoff=now + 30 * 3600),
        J("recent", "predictions", last_fetch=now - 60),
        J("never polled", "predictions"),
        J("near odds later", "odds", kickoff=now + 3600),
        J("stale", "predictions", last_fetch=now - 3600),
        J("near odds", "odds", kickoff=now + 600),
        J("mid odds", "odds", kickoff=now + 5 * 3600),
    ]
    assert [j.name for j in by_priority(jobs, now, near_within=2 * 3600)] == [
        "near odds", "near odds later", "never polled", "stale", "recent", "mid odds", "far odds"]
