"""A tip's identity and whether its match can still alert: shared by the fetcher (which pages bring
something new) and the processor (which tips to store, the once-only claim)."""
from __future__ import annotations

from shared.models import Prediction


def tip_key(predictor_id: str, prediction: Prediction) -> str:
    """Identity of a tip: the prediction id, or what defines it when the id is missing."""
    if prediction.id:
        return f"{predictor_id}:{prediction.id}"
    vote_type = prediction.vote_type if prediction.vote_type is not None else ""
    return f"{predictor_id}:{prediction.event_id}:{vote_type}:{prediction.vote}"


def is_upcoming(prediction: Prediction, now: float, grace_minutes: float) -> bool:
    """The match has not started, or started less than the grace period ago: the tip may alert now or later.

    Finished, canceled and postponed matches never alert; neither does one that kicked off before the grace.
    """
    return match_upcoming(prediction.status.type, prediction.start_date_timestamp, now, grace_minutes)


def match_upcoming(status: str | None, start: float, now: float, grace_minutes: float) -> bool:
    """`is_upcoming` for a match known by its status type and kick-off (a stored tip, a refreshed event)."""
    if status == "notstarted":
        return now - grace_minutes * 60 < start
    if status == "inprogress":
        return 0 <= now - start < grace_minutes * 60
    return False
