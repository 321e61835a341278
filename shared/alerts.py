"""What an alert says: the payload stored in the outbox and rendered by the notifier."""
from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from shared.markets import market_name, pick_label
from shared.models import PeriodStats, Prediction
from shared.prices import decimal_of
from shared.scorecard import Figures, signed_pct


class StatsSummary(BaseModel):
    total: int
    win_rate: float
    yield_pct: float
    profit: float
    avg_odds: float

    @classmethod
    def of(cls, stats: PeriodStats) -> "StatsSummary":
        return cls(
            total=stats.total,
            win_rate=stats.percentage,
            yield_pct=round(stats.yield_pct, 2),
            profit=round(stats.roi, 2),
            avg_odds=stats.avg_odds,
        )


class PredictorInfo(BaseModel):
    id: str
    nickname: str
    all_time: StatsSummary | None = None
    current: StatsSummary | None = None


class MatchInfo(BaseModel):
    event_id: int
    home: str
    away: str
    sport_slug: str | None = None
    event_slug: str | None = None
    custom_id: str | None = None
    start_ts: int

    @classmethod
    def of(cls, prediction: Prediction) -> "MatchInfo":
        return cls(
            event_id=prediction.event_id,
            home=prediction.home_team_name,
            away=prediction.away_team_name,
            sport_slug=prediction.sport_slug,
            event_slug=prediction.event_slug,
            custom_id=prediction.custom_id,
            start_ts=prediction.start_date_timestamp,
        )


class TipLine(BaseModel):
    market: str
    pick: str
    odds: float | None = None
    current_odds: float | None = None  # the market's price of this pick now, when known

    @classmethod
    def of(cls, vote: str, vote_type: int | None, home: str, away: str, odds: float | None) -> "TipLine":
        return cls(market=market_name(vote_type), pick=pick_label(vote, vote_type, home, away),
                   odds=round(odds, 3) if odds else None)

    @classmethod
    def of_prediction(cls, prediction: Prediction) -> "TipLine":
        odds = prediction.odds
        price = decimal_of(odds.fractional_value, odds.decimal_value) if odds else None
        return cls.of(prediction.vote, prediction.vote_type, prediction.home_team_name, prediction.away_team_name,
                      float(price) if price else None)


class Record(BaseModel):
    """Our own record of a predictor's alerted tips (shared/scorecard.py), as an alert quotes it."""

    settled: int
    roi_pct: float | None = None
    clv_pct: float | None = None
    enough: bool = False  # at least SCORECARD_MIN_SETTLED settled tips

    @classmethod
    def of(cls, figures: Figures, min_settled: int) -> "Record | None":
        """None before there is anything to say (nothing settled, no closing price)."""
        if figures.settled == 0 and figures.clv_pct is None:
            return None
        return cls(settled=figures.settled, roi_pct=figures.roi_pct, clv_pct=figures.clv_pct,
                   enough=figures.enough(min_settled))

    def text(self) -> str:
        """`42 settled, ROI +8.1%, CLV +3.2%`, with `(too few to judge)` below SCORECARD_MIN_SETTLED."""
        text = f"{self.settled} settled, ROI {signed_pct(self.roi_pct)}, CLV {signed_pct(self.clv_pct)}"
        return text if self.enough else text + " (too few to judge)"


class NewTipAlert(BaseModel):
    kind: Literal["new_tip"] = "new_tip"
    predictor: PredictorInfo
    match: MatchInfo
    tips: list[TipLine]
    record: Record | None = None


class ConsensusMember(BaseModel):
    predictor: PredictorInfo
    odds: float | None = None  # the price they tipped at
    record: Record | None = None
    joined: bool = False  # new since the last consensus alert of this pick


class Dissent(BaseModel):
    """A monitored predictor on another pick of the same market."""

    nickname: str
    pick: str
    odds: float | None = None


class CrowdShare(BaseModel):
    """Sofascore's users' vote on one pick of the market, in percent of the market's votes."""

    pick: str
    pct: float


class ConsensusAlert(BaseModel):
    kind: Literal["consensus"] = "consensus"
    match: MatchInfo
    market: str
    pick: str
    members: list[ConsensusMember]
    best_odds: float | None = None  # the best current price of the pick
    crowd: list[CrowdShare] = []
    dissent: list[Dissent] = []


class LineMovementAlert(BaseModel):
    kind: Literal["line_movement"] = "line_movement"
    predictor: PredictorInfo
    match: MatchInfo
    tip: TipLine
    tip_odds: float
    current_odds: float
    delta: float


class SettledTip(BaseModel):
    """One alerted tip settled on the digest's day."""

    nickname: str
    match: str  # `Home vs Away`
    market: str
    pick: str
    odds: float | None = None
    closing_odds: float | None = None
    result: Literal["won", "lost", "void"]


class DigestRow(BaseModel):
    """One predictor's record over the digest's window."""

    nickname: str
    alerted: int
    record: Record | None = None


class DigestAlert(BaseModel):
    kind: Literal["digest"] = "digest"
    day: str  # the day the settled tips were settled on, `2026-11-21` in POLL_TIMEZONE
    window_days: int = 30
    settled: list[SettledTip] = []
    predictors: list[DigestRow] = []


class HealthAlert(BaseModel):
    kind: Literal["health"] = "health"
    title: str
    message: str
    level: Literal["info", "warning", "error"] = "warning"


Alert = Annotated[NewTipAlert | LineMovementAlert | ConsensusAlert | DigestAlert | HealthAlert,
                  Field(discriminator="kind")]
AnyAlert = NewTipAlert | LineMovementAlert | ConsensusAlert | DigestAlert | HealthAlert


class Summary(NamedTuple):
    """An alert in three short texts, for operators' listings (`sofamon alerts`, `replay --dry-run`)."""

    predictor: str  # nickname; `-` for a health alert
    match: str  # `Home vs Away`; a health alert's title
    detail: str  # the picks with their odds, the price move, or a health alert's message


_ALERT_JSON = TypeAdapter(Alert)
DETAIL_MAX = 120


def _odds(value: float | None) -> str:
    return f"@{value:.2f}" if value else ""


def summary(alert: AnyAlert) -> Summary:
    if isinstance(alert, HealthAlert):
        return Summary("-", alert.title, alert.message[:DETAIL_MAX])
    if isinstance(alert, DigestAlert):
        won = sum(t.result == "won" for t in alert.settled)
        return Summary(f"{len(alert.predictors)} predictors", f"digest {alert.day}",
                       f"{len(alert.settled)} settled ({won} won)")
    match = f"{alert.match.home} vs {alert.match.away}"
    if isinstance(alert, ConsensusAlert):
        who = ", ".join(m.predictor.nickname for m in alert.members)
        return Summary(f"{len(alert.members)} predictors", match,
                       f"{alert.market}: {alert.pick} {_odds(alert.best_odds)} ({who})".replace("  ", " ")[:DETAIL_MAX])
    if isinstance(alert, NewTipAlert):
        detail = "; ".join(f"{t.market}: {t.pick} {_odds(t.odds)}".rstrip() for t in alert.tips)
    else:
        detail = (f"{alert.tip.market}: {alert.tip.pick} {_odds(alert.tip_odds)} -> {_odds(alert.current_odds)}"
                  f" ({alert.delta * 100:+.1f}%)")
    return Summary(alert.predictor.nickname, match, detail)


def summary_of_json(payload: str) -> Summary:
    """The summary of a stored payload; one this version cannot read still lists (as `?`)."""
    try:
        return summary(_ALERT_JSON.validate_json(payload))
    except ValidationError as error:
        return Summary("?", "?", f"unreadable payload ({error.error_count()} error(s))")
