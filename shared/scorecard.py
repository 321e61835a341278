"""A predictor's record over alerted tips: settlement of one tip and the figures of many (rules, no I/O).

- A tip is settled by its own match: finished with `correct` 1 is won, finished with `correct` 0 or -1
  is lost, canceled is void; anything else (not started, in play, postponed, finished without a verdict)
  stays open. Never guessed.
- ROI is the flat one-unit-stake return at the tip's odds, over won and lost tips that had odds:
  100 × (Σ over won (odds − 1) − lost) / (won + lost). A tip made without odds counts as won or lost
  but cannot say what it paid.
- CLV compares the tip's odds with the closing price (the last price seen before kick-off) of the same
  market and pick: 100 × mean(tip odds / closing odds − 1); `beat_close_pct` is the share of those tips
  whose odds were above the closing odds.
- Per predictor (`by_predictor`): one row each, best CLV first (those without one last), then the most settled;
  what `sofamon report` lists and the daily digest quotes.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Result = Literal["won", "lost", "void"]
RESULTS: tuple[Result, ...] = ("won", "lost", "void")


def settle(status_type: str | None, correct: int | None) -> Result | None:
    """The result of a tip from its match's status and Sofascore's verdict; None while it is open."""
    status = (status_type or "").lower()
    if status == "canceled":
        return "void"
    if status != "finished" or correct is None:
        return None
    if correct == 1:
        return "won"
    if correct in (0, -1):
        return "lost"
    return None  # a verdict we do not know: left open rather than guessed


@dataclass(frozen=True)
class TipRecord:
    """One alerted tip as the scorecard sees it: its odds (decimal), result and closing odds, any unknown."""

    odds: float | None
    result: Result | None
    closing: float | None = None


@dataclass(frozen=True)
class Figures:
    alerted: int
    won: int
    lost: int
    void: int
    roi_pct: float | None
    clv_pct: float | None
    beat_close_pct: float | None

    @property
    def settled(self) -> int:
        return self.won + self.lost + self.void

    def enough(self, min_settled: int) -> bool:
        """Whether there are enough settled tips to judge by (SCORECARD_MIN_SETTLED)."""
        return self.settled >= min_settled

    def as_dict(self) -> dict[str, int | float | None]:
        return {"alerted": self.alerted, "settled": self.settled, "won": self.won, "lost": self.lost,
                "void": self.void, "roi_pct": self.roi_pct, "clv_pct": self.clv_pct,
                "beat_close_pct": self.beat_close_pct}


def _priced(odds: float | None) -> bool:
    return odds is not None and odds > 1.0


@dataclass
class Tally:
    """Running sums from which `Figures` follow: what a predictor's stored record keeps (one row, updated as
    tips settle) and what `figures` adds up over a window's tips."""

    alerted: int = 0
    won: int = 0
    lost: int = 0
    void: int = 0
    staked: int = 0  # won and lost tips with odds
    returned: float = 0.0  # their flat one-unit return
    closing_n: int = 0  # tips with odds and a closing price
    clv_sum: float = 0.0  # Σ (tip odds / closing odds - 1) over them
    beat_n: int = 0  # those whose odds were above the closing odds

    def add(self, tip: TipRecord) -> None:
        self.alerted += 1
        if tip.result == "won":
            self.won += 1
        elif tip.result == "lost":
            self.lost += 1
        elif tip.result == "void":
            self.void += 1
        if tip.result in ("won", "lost") and _priced(tip.odds):
            self.staked += 1
            self.returned += (tip.odds - 1.0) if tip.result == "won" else -1.0  # type: ignore[operator]
        if _priced(tip.odds) and _priced(tip.closing):
            ratio = tip.odds / tip.closing - 1.0  # type: ignore[operator]
            self.closing_n += 1
            self.clv_sum += ratio
            self.beat_n += ratio > 0

    def figures(self) -> Figures:
        return Figures(
            alerted=self.alerted, won=self.won, lost=self.lost, void=self.void,
            roi_pct=100.0 * self.returned / self.staked if self.staked else None,
            clv_pct=100.0 * self.clv_sum / self.closing_n if self.closing_n else None,
            beat_close_pct=100.0 * self.beat_n / self.closing_n if self.closing_n else None,
        )


def figures(tips: Iterable[TipRecord]) -> Figures:
    tally = Tally()
    for tip in tips:
        tally.add(tip)
    return tally.figures()


@dataclass(frozen=True)
class Scored:
    """One alerted tip of the scorecard: whose, and its record."""

    predictor_id: str
    nickname: str | None
    record: TipRecord


@dataclass(frozen=True)
class Row:
    """One predictor's figures."""

    id: str
    nickname: str | None
    figures: Figures


def by_predictor(scored: Iterable[Scored], predictor: str | None = None) -> tuple[list[Row], Figures]:
    """One row per predictor (best CLV first, those without one last), and the total over them; `predictor`, an
    id or a nickname in any case, keeps that predictor's tips only."""
    wanted = predictor.casefold() if predictor else None
    chosen = [s for s in scored if wanted is None or wanted in (s.predictor_id.casefold(),
                                                                 (s.nickname or "").casefold())]
    tips_of: dict[str, list[Scored]] = defaultdict(list)
    for tip in chosen:
        tips_of[tip.predictor_id].append(tip)
    rows = [Row(pid, tips[0].nickname, figures(t.record for t in tips)) for pid, tips in tips_of.items()]
    rows.sort(key=lambda r: (r.figures.clv_pct is None, -(r.figures.clv_pct or 0.0), -r.figures.settled,
                             (r.nickname or r.id).casefold()))
    return rows, figures(t.record for t in chosen)


def signed_pct(value: float | None) -> str:
    """`+12.3%`, `-4.0%`, `–` when unknown."""
    return "–" if value is None else f"{value:+.1f}%"
