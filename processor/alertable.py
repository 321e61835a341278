"""Which tips deserve an alert, judged at which times, and until when their price is followed (pure rules).

Live processing judges a tip, and the odds of an alerted tip, at the time they were fetched and again
at the time they are processed, so a backlog handled late alerts neither a tip nor a line movement of
a match that kicked off meanwhile; a replay has no processing clock and judges by fetch time only.
Line movement is checked for an alerted tip until its match kicks off, by the kick-off rule of
`shared.watch` (which also ends the fetcher's odds polling).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from shared.models import Prediction
from shared.tips import is_upcoming
from shared.watch import kicked_off


def is_alertable(prediction: Prediction, now: float, lookahead_hours: float, grace_minutes: float) -> bool:
    """Upcoming (`shared.tips.is_upcoming`) and kicking off within the look-ahead.

    A tip beyond the look-ahead is not alertable yet: it is stored deferred and alerted once it comes within.
    """
    return (is_upcoming(prediction, now, grace_minutes)
            and prediction.start_date_timestamp <= now + lookahead_hours * 3600)


@dataclass(frozen=True)
class Judge:
    """Alertability at every time a tip is judged at.

    `clock` is the processing time (live processing); None judges by fetch time only (replay).
    """

    lookahead_hours: float
    grace_minutes: float
    clock: Callable[[], float] | None

    def times(self, fetched_at: float) -> list[float]:
        return [fetched_at] if self.clock is None else [fetched_at, max(fetched_at, self.clock())]

    def alertable(self, predictions: list[Prediction], fetched_at: float) -> list[Prediction]:
        """The tips alertable at every judging time, in page order."""
        times = self.times(fetched_at)
        return [p for p in predictions
                if all(is_alertable(p, t, self.lookahead_hours, self.grace_minutes) for t in times)]

    def movement_applies(self, start_ts: float, fetched_at: float) -> bool:
        """Odds fetched before kick-off but processed after it are too late to alert a movement."""
        return all(movement_applies(start_ts, t) for t in self.times(fetched_at))


def movement_applies(start_ts: float, fetched_at: float) -> bool:
    """An alerted tip's price is compared with the odds fetched before its match kicked off, not after."""
    return not kicked_off(start_ts, fetched_at)


def group_by_match(predictions: list[Prediction]) -> dict[int, list[Prediction]]:
    """Tips of one predictor on one match make one alert; order of first appearance is kept."""
    groups: dict[int, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        groups[prediction.event_id].append(prediction)
    return dict(groups)
