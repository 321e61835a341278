"""Pydantic models at the boundaries: Sofascore payloads and the entries of the fetched stream."""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import AliasGenerator, BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.redisconn import decoded


class ApiModel(BaseModel):
    """Sofascore's camelCase JSON; unknown fields ignored, inferred fields optional."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel), populate_by_name=True, extra="ignore",
        allow_inf_nan=False,
    )


def _drop_bad_items(data: Any, key: str, model: type[BaseModel]) -> Any:
    """Leave out the items of a list that do not validate, noting why in `skipped`.

    One odd tip, predictor or market must not throw away the whole payload (and with it every
    good item on the page, cycle after cycle). A payload whose list itself is missing still fails.
    """
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        return data
    kept, skipped = [], list(data.get("skipped", []))
    for index, item in enumerate(data[key]):
        try:
            # The validated instance is kept: pydantic takes it as it is, so no item is validated twice.
            kept.append(model.model_validate(item))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "item"
            skipped.append(f"{key}[{index}].{where}: {first['msg']}")
    return {**data, key: kept, "skipped": skipped}


class Lenient(ApiModel):
    """A payload with a list whose bad items are left out; `skipped` says which and why."""

    skipped: list[str] = []


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

    @field_validator("id", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Ranking(Lenient):
    ranking: list[RankingEntry]

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, data: Any) -> Any:
        return _drop_bad_items(data, "ranking", RankingEntry)


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

    @field_validator("id", "custom_id", "event_slug", "sport_slug", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("home_team_name", "away_team_name", mode="before")
    @classmethod
    def _team(cls, value: Any, info: Any) -> Any:
        if value in (None, ""):
            return "Home" if info.field_name == "home_team_name" else "Away"
        return value


class PredictionsPage(Lenient):
    predictions: list[Prediction]
    has_next_page: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, data: Any) -> Any:
        return _drop_bad_items(data, "predictions", Prediction)


class OddsChoice(ApiModel):
    name: str
    fractional_value: str
    initial_fractional_value: str | None = None


class OddsMarket(Lenient):
    market_id: int
    market_name: str = ""
    choice_group: str | None = None
    suspended: bool = False
    choices: list[OddsChoice] = []

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, data: Any) -> Any:
        return _drop_bad_items(data, "choices", OddsChoice)


class EventOdds(Lenient):
    markets: list[OddsMarket]

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, data: Any) -> Any:
        return _drop_bad_items(data, "markets", OddsMarket)

    @property
    def all_skipped(self) -> list[str]:
        return self.skipped + [f"market {m.market_id}: {why}" for m in self.markets for why in m.skipped]


class EventInfo(ApiModel):
    id: int
    status: Status
    start_timestamp: int


class EventDetails(ApiModel):
    """`GET /event/{id}`: the match as it stands (the fetcher refreshes deferred tips' matches with it)."""

    event: EventInfo


FetchKind = Literal["leaderboard", "predictions", "odds", "health", "event"]


class FetchRecord(BaseModel):
    """One entry of the fetched stream: the raw payload plus what, whom and when (and which page of predictions)."""

    kind: FetchKind
    subject: str
    fetched_at: float
    payload: str
    page: int = 0

    def to_fields(self) -> dict[str, str]:
        fields = {"kind": self.kind, "subject": self.subject, "fetched_at": repr(self.fetched_at),
                  "payload": self.payload}
        if self.page:
            fields["page"] = str(self.page)  # page 0 is written as before: old entries read the same
        return fields

    @classmethod
    def from_fields(cls, fields: dict[Any, Any]) -> "FetchRecord":
        return cls.model_validate(decoded(fields))

    def json_payload(self) -> Any:
        return json.loads(self.payload)
