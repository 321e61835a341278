"""Which tips deserve an alert now: a pure function of the tip and the time it was fetched."""
from __future__ import annotations

from collections import defaultdict

from shared.models import Prediction


def is_alertable(prediction: Prediction, now: float, lookahead_hours: float, grace_minutes: float) -> bool:
    """Not started and kicking off within the look-ahead, or kicked off less than the grace period ago.

    A tip beyond the look-ahead is not alertable yet; a later fetch alerts it once it comes within.
    """
    start = prediction.start_date_timestamp
    status = prediction.status.type
    if status == "notstarted":
        return now - grace_minutes * 60 < start <= now + lookahead_hours * 3600
    if status == "inprogress":
        return 0 <= now - start < grace_minutes * 60
    return False


def group_by_match(predictions: list[Prediction]) -> dict[int, list[Prediction]]:
    """Tips of one predictor on one match make one alert; order of first appearance is kept."""
    groups: dict[int, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        groups[prediction.event_id].append(prediction)
    return dict(groups)
