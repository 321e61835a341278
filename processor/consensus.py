"""When monitored predictors agree: which picks of one match make a consensus alert (a rule, no I/O).

A pick is a market and a choice of one match. When CONSENSUS_MIN_PREDICTORS monitored predictors or more
have an alerted tip on the same pick, it is a consensus; it is announced once, and again each time a
further predictor joins it (at most one alert per predictor and pick). The other picks of the same
market by monitored predictors are its dissent. A match that has kicked off makes none.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Set
from dataclasses import dataclass


@dataclass(frozen=True)
class Tip:
    """An alerted tip on the match: who, on which market (`vote_type`) and pick (`vote`, case folded)."""

    predictor_id: str
    market: int | None
    pick: str

    @property
    def key(self) -> tuple[int | None, str]:
        return self.market, self.pick.casefold()


@dataclass(frozen=True)
class Consensus:
    market: int | None
    pick: str
    members: tuple[str, ...]  # predictor ids, in the order they tipped
    joined: tuple[str, ...]  # members not announced before: the reason for this alert
    dissent: tuple[Tip, ...]  # the same market's other picks by monitored predictors


def consensus(tips: Iterable[Tip], announced: Set[tuple[int | None, str, str]], min_predictors: int,
              kicked_off: bool) -> list[Consensus]:
    """The consensus alerts due for one match. `tips` in the order they were alerted; `announced` holds
    (market, folded pick, predictor id) of members already in an alert."""
    if kicked_off or min_predictors < 1:
        return []
    by_pick: dict[tuple[int | None, str], list[Tip]] = defaultdict(list)
    for tip in tips:
        group = by_pick[tip.key]
        if all(t.predictor_id != tip.predictor_id for t in group):
            group.append(tip)
    due = []
    for (market, folded), group in by_pick.items():
        if len(group) < min_predictors:
            continue
        members = tuple(t.predictor_id for t in group)
        joined = tuple(p for p in members if (market, folded, p) not in announced)
        if not joined:
            continue
        dissent = tuple(t for (m, f), others in by_pick.items() if m == market and f != folded for t in others)
        due.append(Consensus(market, group[0].pick, members, joined, dissent))
    return due
