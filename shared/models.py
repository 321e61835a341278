"""Pydantic models at the boundaries: Sofascore payloads and the entries of the fetched stream."""
from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from shared.redisconn import decoded

# -- bounds: what a Sofascore value may be before it reaches the database or an alert -------------
#
# A value outside them is never real data, and it would fail later, where it costs more: a 2**63
# event id overflows SQLite's INTEGER, a NUL is refused by PostgreSQL's text, a multi-kilobyte id
# makes an index row too large. What a field is for decides what an overlong value costs: an
# identity (id, vote, market, price) leaves its item out, a label (team or predictor name) is
# shortened, a link part (slug, custom id) is dropped and the alert links without it.

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
ID_MAX = 64  # ids, votes, prices: real ones are under 30 characters
NAME_MAX = 200  # names and slugs: real ones are under 60

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
# Kick-offs between 1970 and the year 9999: what a date can show.
Timestamp = Annotated[int, Field(ge=0, le=253_402_300_799)]
# `voteType` is the `marketId` of the odds (1 full time, 5 both teams to score, ...): real ones are
# below 100, so 1000 leaves room for new markets while anything larger is junk.
MarketId = Annotated[int, Field(ge=0, le=1000)]

# C0 and C1 control characters (NUL included) and lone UTF-16 surrogates: no database stores the
# latter, PostgreSQL refuses NUL, and none of them belongs in a name or an id.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def clean_text(value: Any) -> Any:
    return _UNPRINTABLE.sub("", value) if isinstance(value, str) else value


def _shortened(value: str) -> str:
    return value if len(value) <= NAME_MAX else value[: NAME_MAX - 1] + "…"


def _link_part(value: str) -> str | None:
    return value if len(value) <= NAME_MAX else None


def _identity(max_length: int) -> Any:
    return Annotated[str, StringConstraints(max_length=max_length), BeforeValidator(clean_text)]


Ident = _identity(ID_MAX)
LongIdent = _identity(NAME_MAX)  # an identity that is a name (a choice such as a player)
Label = Annotated[str, BeforeValidator(clean_text), AfterValidator(_shortened)]
LinkPart = Annotated[str, BeforeValidator(clean_text), AfterValidator(_link_part)]


def _id_text(value: Any) -> Any:
    """An id given as a number becomes text; a number outside 64 bits is no id."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("number outside the 64-bit range")
        return str(value)
    return value


M = TypeVar("M", bound=BaseModel)


def validate_payload(model: type[M], payload: str) -> M:
    """A payload as `model`, from JSON text.

    The fast JSON reader refuses a lone surrogate escape (`\\ud800`) that Python's accepts; such a
    payload is read the slow way, and its text cleaned like any other, rather than lost whole.
    """
    try:
        return model.model_validate_json(payload)
    except ValidationError as error:
        if error.errors()[0]["type"] != "json_invalid":
            raise
        try:
            data = json.loads(payload)
        except ValueError:
            raise error from None
    return model.model_validate(data)


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
            skipped.append(f"{key}[{index}].{where}: {first['msg']}{_item_id(item)}")
    return {**data, key: kept, "skipped": skipped}


def _item_id(item: Any) -> str:
    """` (item id X)` for an item with an id, shortened: the line must name the item, not echo a huge value."""
    value = item.get("id") if isinstance(item, dict) else None
    if value is None or isinstance(value, (dict, list)):
        return ""
    shown = clean_text(str(value))
    return f" (item id {shown[:ID_MAX]}{'…' if len(shown) > ID_MAX else ''})"


class Lenient(ApiModel):
    """A payload with a list whose bad items are left out; `skipped` says which and why."""

    skipped: list[str] = []


class Odds(ApiModel):
    decimal_value: float | None = None
    fractional_value: Ident | None = None

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
    id: Ident
    nickname: Label
    slug: LinkPart | None = None
    vote_statistics: VoteStatistics

    @field_validator("id", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return _id_text(value)


class Ranking(Lenient):
    ranking: list[RankingEntry]

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, data: Any) -> Any:
        return _drop_bad_items(data, "ranking", RankingEntry)


class Status(ApiModel):
    code: int | None = None
    description: Label | None = None
    type: Ident


class Prediction(ApiModel):
    id: Ident | None = None
    custom_id: LinkPart | None = None
    event_id: Int64
    event_slug: LinkPart | None = None
    sport_slug: LinkPart | None = None
    home_team_name: Label = "Home"
    away_team_name: Label = "Away"
    start_date_timestamp: Timestamp
    status: Status
    vote: Ident
    vote_type: MarketId | None = None
    odds: Odds | None = None
    correct: int | None = None

    @field_validator("vote_type", mode="before")
    @classmethod
    def _numeric(cls, value: Any) -> Any:
        return None if value in ("", None) else value

    @field_validator("id", "custom_id", "event_slug", "sport_slug", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return _id_text(value)

    @field_validator("home_team_name", "away_team_name", mode="before")
    @classmethod
    def _team(cls, value: Any, info: Any) -> Any:
        value = clean_text(value)
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
    name: LongIdent
    fractional_value: Ident
    initial_fractional_value: Ident | None = None


class OddsMarket(Lenient):
    market_id: MarketId
    market_name: Label = ""
    choice_group: Ident | None = None
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
    id: Int64
    status: Status
    start_timestamp: Timestamp


class EventDetails(ApiModel):
    """`GET /event/{id}`: the match as it stands (the fetcher refreshes deferred tips' matches with it)."""

    event: EventInfo


VoteCount = Annotated[int, Field(ge=0, le=INT64_MAX)]


class EventVotes(ApiModel):
    """`GET /event/{id}/votes`: how Sofascore's users voted on a match, a count per choice of each poll.

    Polls: `vote` (full time: `vote1`, `voteX`, `vote2`), `bothTeamsToScoreVote` (`voteYes`, `voteNo`),
    `firstTeamToScoreVote` (`voteHome`, `voteNoGoal`, `voteAway`); a match may lack any of them. An empty
    object stands for a match without votes (the fetcher writes `{}` for a 404).
    """

    vote: dict[str, VoteCount] | None = None
    both_teams_to_score_vote: dict[str, VoteCount] | None = None
    first_team_to_score_vote: dict[str, VoteCount] | None = None


FetchKind = Literal["leaderboard", "predictions", "odds", "health", "event", "votes"]


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
