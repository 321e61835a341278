"""Which predictors to monitor: the leaderboard filtered on all-time stats, plus the configured targets."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.models import RankingEntry
from shared.settings import Settings


@dataclass(frozen=True)
class Filters:
    """The MIN_* and TOP_PREDICTORS_LIMIT settings (their defaults are in Settings)."""

    min_roi: float  # yield in percent (roi / total * 100)
    min_avg_odds: float
    min_total_bets: int
    min_win_rate: float
    limit: int

    @classmethod
    def of(cls, settings: Settings) -> "Filters":
        return cls(
            min_roi=settings.min_roi,
            min_avg_odds=settings.min_avg_odds,
            min_total_bets=settings.min_total_bets,
            min_win_rate=settings.min_win_rate,
            limit=settings.top_predictors_limit,
        )


@dataclass(frozen=True)
class Predictor:
    id: str
    nickname: str | None = None

    @property
    def label(self) -> str:
        """How log lines name a predictor: `GoalGuru_88 (6a1f…)`, or the bare id when the nickname is unknown."""
        return f"{self.nickname} ({self.id[:4]}…)" if self.nickname else self.id


def passes(entry: RankingEntry, filters: Filters) -> bool:
    """Every filter, on all-time stats (the current period is too short to judge anyone by)."""
    stats = entry.vote_statistics.all_time
    return (
        stats.yield_pct >= filters.min_roi
        and stats.avg_odds >= filters.min_avg_odds
        and stats.total >= filters.min_total_bets
        and stats.percentage >= filters.min_win_rate
    )


def select_predictors(ranking: Iterable[RankingEntry], filters: Filters, targets: Iterable[str] = ()) -> list[Predictor]:
    """The first `limit` passing entries in leaderboard order, then every target not already chosen."""
    entries = list(ranking)
    chosen = [Predictor(e.id, e.nickname) for e in entries if passes(e, filters)][: filters.limit]
    return with_targets(chosen, targets, {e.id: e.nickname for e in entries})


def with_targets(chosen: list[Predictor], targets: Iterable[str], nicknames: dict[str, str | None]) -> list[Predictor]:
    """`chosen` plus the targets, without duplicates; a target keeps a nickname we know."""
    seen = {p.id for p in chosen}
    result = list(chosen)
    for target in targets:
        if target not in seen:
            seen.add(target)
            result.append(Predictor(target, nicknames.get(target)))
    return result
