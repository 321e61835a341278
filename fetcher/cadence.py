"""When an event's odds are due again: the cadence by time to kick-off (a rule, no I/O).

Prices days away barely move, so far events are polled rarely and near ones every cycle; one last
poll inside the closing window catches the closing price. An event whose odds answered 404 (none
offered) is asked only at the slowest pace. Nothing is asked once the event has kicked off.
"""
from __future__ import annotations

from dataclasses import dataclass

from shared import watch
from shared.settings import Settings


@dataclass(frozen=True)
class Cadence:
    """The bands, in seconds (from the ODDS_* settings)."""

    slow_beyond: float  # more than this before kick-off: the slow band
    slow_every: float
    mid_every: float  # between every_cycle_within and slow_beyond
    every_cycle_within: float  # this close to kick-off: every cycle
    closing_within: float  # one more poll inside this window if the last was before it

    @classmethod
    def of(cls, settings: Settings) -> "Cadence":
        return cls(
            slow_beyond=settings.odds_slow_beyond_hours * 3600,
            slow_every=settings.odds_slow_every_minutes * 60,
            mid_every=settings.odds_mid_every_minutes * 60,
            every_cycle_within=settings.odds_every_cycle_within_hours * 3600,
            closing_within=settings.odds_closing_within_minutes * 60,
        )


def odds_due(cadence: Cadence, kickoff: float, now: float, last_fetch: float | None, no_odds: bool = False) -> bool:
    """Whether the event's odds should be asked this cycle; `last_fetch` None = never (the baseline)."""
    if watch.kicked_off(kickoff, now):
        return False
    if last_fetch is None:
        return True
    since = now - last_fetch
    if no_odds:
        return since >= cadence.slow_every
    to_go = kickoff - now
    if to_go <= cadence.closing_within and last_fetch < kickoff - cadence.closing_within:
        return True  # the closing poll
    if to_go <= cadence.every_cycle_within:
        return True
    return since >= (cadence.slow_every if to_go > cadence.slow_beyond else cadence.mid_every)
