"""Pydantic models at the boundaries: Sofascore payloads and the entries of the fetched stream."""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Sofascore's camelCase JSON; unknown fields ignored, inferred fields optional."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel), populate_by_name=True, extra="ignore"
    )


class Odds(ApiModel):
    decimal_value: float | None = None
    fractional_value: str | None = None

    @field_validator("decimal_value", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if value in ("", None) else value


class PeriodStats(ApiModel):
    total: int = 0
    correct: int = 0
    percentage: float = 0.0
    avg_correct_odds: Odds | None = None
    roi: float = 0.0

    @field_validator("percentage", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        return value.strip().rstrip("%") or 0 if isinstance(value, str) else value

    @field_validator("total", "correct", "roi", mode="before")
    @classmethod
    def _null_zero(cls, value: Any) -> Any:
        return 0 if value in (None, "") else value

    @property
    def yield_pct(self) -> float:
        """Profit per bet in percent: `roi` is profit in units over all tips."""
        return self.roi / self.total * 100 if self.total else 0.0

    @property
    def avg_odds(self) -> float:
        return (self.avg_correct_odds.decimal_value or 0.0) if self.avg_correct_odds else 0.0


class VoteStatistics(ApiModel):
    all_time: PeriodStats
    current: PeriodStats | None = None


class RankingEntry(ApiModel):
    id: str
    nickname: str
    slug: str | None = None
    vote_statistics: VoteStatistics


class Ranking(ApiModel):
    ranking: list[RankingEntry]


class Status(ApiModel):
    code: int | None = None
    description: str | None = None
    type: str


class Prediction(ApiModel):
    id: str | None = None
    custom_id: str | None = None
    event_id: int
    event_slug: str | None = None
    sport_slug: str | None = None
    home_team_name: str = "Home"
    away_team_name: str = "Away"
    start_date_timestamp: int
    status: Status
    vote: str
    vote_type: int | None = None
    odds: Odds | None = None
    correct: int | None = None

    @field_validator("vote_type", mode="before")
    @classmethod
    def _numeric(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    def tip_key(self, predictor_id: str) -> str:
        """Identity of a tip: the prediction id, or what defines it when the id is missing."""
        if self.id:
            return f"{predictor_id}:{self.id}"
        return f"{predictor_id}:{self.event_id}:{self.vote_type if self.vote_type is not None else ''}:{self.vote}"


class PredictionsPage(ApiModel):
    predictions: list[Prediction]
    has_next_page: bool | None = None


class OddsChoice(ApiModel):
    name: str
    fractional_value: str
    initial_fractional_value: str | None = None


class OddsMarket(ApiModel):
    market_id: int
    market_name: str = ""
    choice_group: str | None = None
    suspended: bool = False
    choices: list[OddsChoice] = []


class EventOdds(ApiModel):
    markets: list[OddsMarket]


FetchKind = Literal["leaderboard", "predictions", "odds", "health"]


class FetchRecord(BaseModel):
    """One entry of the fetched stream: the raw payload plus what, whom and when."""

    kind: FetchKind
    subject: str
    fetched_at: float
    payload: str

    def to_fields(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "fetched_at": repr(self.fetched_at), "payload": self.payload}

    @classmethod
    def from_fields(cls, fields: dict[Any, Any]) -> "FetchRecord":
        decoded = {_text(k): _text(v) for k, v in fields.items()}
        return cls.model_validate(decoded)

    def json_payload(self) -> Any:
        return json.loads(self.payload)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
