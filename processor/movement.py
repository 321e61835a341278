"""Line movement: how far the price of a tipped pick has moved since the tip (pure)."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from shared.markets import choice_name
from shared.models import EventOdds
from shared.prices import decimal_of


@dataclass(frozen=True)
class Price:
    market_id: int
    choice_group: str | None
    choice: str
    fractional: str
    decimal: Fraction


def all_prices(odds: EventOdds, *, suspended: bool = True) -> list[Price]:
    """Every price on offer (suspended markets too, unless told not to)."""
    prices = []
    for market in odds.markets:
        if market.suspended and not suspended:
            continue
        for choice in market.choices:
            value = decimal_of(choice.fractional_value)
            if value is not None:
                prices.append(Price(market.market_id, market.choice_group, choice.name, choice.fractional_value,
                                    value))
    return prices


def unreadable_prices(odds: EventOdds) -> dict[int, list[str]]:
    """The prices `all_prices` cannot read, by market: `{market id: ["choice: text", ...]}`."""
    found: dict[int, list[str]] = {}
    for market in odds.markets:
        for choice in market.choices:
            if decimal_of(choice.fractional_value) is None:
                found.setdefault(market.market_id, []).append(f"{choice.name}: {choice.fractional_value!r}")
    return found


def current_price(odds: EventOdds, vote: str, vote_type: int | None, home: str, away: str) -> Price | None:
    """The price now offered for the same market (`marketId` = `voteType`) and choice."""
    wanted = choice_name(vote, vote_type, home, away)
    if wanted is None or vote_type is None:
        return None
    return next((p for p in all_prices(odds, suspended=False)
                 if p.market_id == vote_type and p.choice.casefold() == wanted.casefold()), None)


def delta(tip: Fraction, current: Fraction) -> Fraction:
    """Δ = current / tip − 1, computed from the fractions (Sofascore's `change` is not trusted)."""
    return current / tip - 1


@dataclass(frozen=True)
class Decision:
    alert: bool
    armed: bool


def decide(delta_value: Fraction, armed: bool, threshold: float) -> Decision:
    """Alert once when |Δ| reaches the threshold; re-arm only after |Δ| fell below half of it."""
    size = abs(delta_value)
    limit = Fraction(str(threshold))
    if armed and size >= limit:
        return Decision(alert=True, armed=False)
    if not armed and size < limit / 2:
        return Decision(alert=False, armed=True)
    return Decision(alert=False, armed=armed)
