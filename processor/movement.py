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
    suspended: bool = False  # its market is suspended: kept in the history, no current price


def all_prices(odds: EventOdds) -> list[Price]:
    """Every price on offer, suspended markets' too."""
    prices = []
    for market in odds.markets:
        for choice in market.choices:
            value = decimal_of(choice.fractional_value)
            if value is not None:
                prices.append(Price(market.market_id, market.choice_group, choice.name, choice.fractional_value,
                                    value, market.suspended))
    return prices


def unreadable_prices(odds: EventOdds) -> dict[int, list[str]]:
    """The prices `all_prices` cannot read, by market: `{market id: ["choice: text", ...]}`."""
    found: dict[int, list[str]] = {}
    for market in odds.markets:
        for choice in market.choices:
            if decimal_of(choice.fractional_value) is None:
                found.setdefault(market.market_id, []).append(f"{choice.name}: {choice.fractional_value!r}")
    return found


def current_price(prices: list[Price], vote: str, vote_type: int | None, home: str, away: str) -> Price | None:
    """Among an event's prices (`all_prices`, read once for all its tips), the one now offered for the same
    market (`marketId` = `voteType`) and choice; a suspended market offers none."""
    wanted = choice_name(vote, vote_type, home, away)
    if wanted is None or vote_type is None:
        return None
    return next((p for p in prices if not p.suspended and p.market_id == vote_type
                 and p.choice.casefold() == wanted.casefold()), None)


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
