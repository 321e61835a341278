"""Line movement: how far the price of a tipped pick has moved since the tip (pure)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from shared.markets import choice_name
from shared.models import EventOdds


@dataclass(frozen=True)
class Price:
    market_id: int
    choice_group: str | None
    choice: str
    fractional: str
    decimal: Fraction


def parse_fraction(text: str) -> Fraction | None:
    numerator, _, denominator = text.strip().partition("/")
    try:
        value = Fraction(int(numerator), int(denominator or 1))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value >= 0 else None


def decimal_of(fractional: str | None, decimal: float | None) -> Fraction | None:
    """A tip's price, exact from its fraction when there is one."""
    if fractional:
        value = parse_fraction(fractional)
        if value is not None:
            return 1 + value
    return Fraction(str(decimal)) if decimal and math.isfinite(decimal) and decimal > 1 else None


def all_prices(odds: EventOdds, *, suspended: bool = True) -> list[Price]:
    """Every price on offer (suspended markets too, unless told not to)."""
    prices = []
    for market in odds.markets:
        if market.suspended and not suspended:
            continue
        for choice in market.choices:
            value = parse_fraction(choice.fractional_value)
            if value is not None:
                prices.append(Price(market.market_id, market.choice_group, choice.name, choice.fractional_value,
                                    1 + value))
    return prices


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
