"""The daily digest (rules, no I/O): which day's digest is due at a time, and what it says.

- **When.** The digest of day D (a calendar day in POLL_TIMEZONE) is due from DIGEST_TIME on day D + 1 until that
  day ends. A processor that was down at DIGEST_TIME sends it when it comes back that day; one that comes back a
  day or more later sends the digest of the day before the one it came back on, never an older one. Told on the
  wall clock, so daylight saving time needs nothing of its own: a DIGEST_TIME the clocks skip (spring forward) is
  reached at the first minute after the gap, one they repeat (fall back) at its first occurrence, and a day of 23
  or 25 hours is bounded by its own midnights. Unset DIGEST_TIME: never due.
- **What.** The alerted tips settled on D (when their result was recorded), by kick-off; and each predictor's
  record over the tips alerted in the `WINDOW_DAYS` days up to when it is made, exactly as `sofamon report` shows
  it then (shared/scorecard.py `by_predictor`: best CLV first), marked too few to judge below
  SCORECARD_MIN_SETTLED.
- **Nothing to say.** No tip settled on D and none alerted in the window: no digest that day (a quiet monitor
  stays quiet). Tips alerted in the window but none settled on D: a digest all the same, its records being news.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.alerts import DigestAlert, DigestRow, Record, SettledTip, TipLine
from shared.scorecard import Scored, by_predictor
from shared.settlements import Settled

WINDOW_DAYS = 30
WINDOW_SECONDS = WINDOW_DAYS * 86_400


def due(now: float, at: time | None, tz: ZoneInfo) -> date | None:
    """The day whose digest is due at `now`: yesterday (local) once today's wall clock has reached `at`; None
    before then, and always when `at` is None (no digest)."""
    if at is None:
        return None
    local = datetime.fromtimestamp(now, tz)
    if local.time() < at:
        return None
    return local.date() - timedelta(days=1)


def bounds(day: date, tz: ZoneInfo) -> tuple[float, float]:
    """The day's first instant and the next day's (Unix times): what `settled_between` reads."""
    def midnight(d: date) -> float:
        return datetime.combine(d, time(0), tzinfo=tz).timestamp()

    return midnight(day), midnight(day + timedelta(days=1))


def settled_tip(tip: Settled) -> SettledTip:
    """A settled tip in the digest's words: its market and pick named as a new-tip alert names them."""
    line = TipLine.of(tip.vote, tip.vote_type, tip.home, tip.away, tip.odds)
    return SettledTip(nickname=tip.nickname or tip.predictor_id, match=f"{tip.home} vs {tip.away}",
                      market=line.market, pick=line.pick, odds=line.odds,
                      closing_odds=round(tip.closing, 3) if tip.closing else None, result=tip.result)


def build(day: date, settled: Iterable[Settled], scored: Iterable[Scored], min_settled: int) -> DigestAlert | None:
    """The digest of `day` from the tips settled on it and the tips alerted in the window (None: nothing to say)."""
    tips = [settled_tip(tip) for tip in settled]
    rows, _total = by_predictor(scored)
    if not tips and not rows:
        return None
    return DigestAlert(day=day.isoformat(), window_days=WINDOW_DAYS, settled=tips,
                       predictors=[DigestRow(nickname=row.nickname or row.id, alerted=row.figures.alerted,
                                             record=Record.of(row.figures, min_settled)) for row in rows])
