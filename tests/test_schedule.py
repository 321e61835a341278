"""The poll schedule: fixed local times, a seeded Random, DST-aware zones."""
from __future__ import annotations

import random
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from fetcher.schedule import base_interval, next_poll_seconds

LONDON = ZoneInfo("Europe/London")
SEED = 1234


def poll(local: datetime, scan: float = 5.0, tz: ZoneInfo = LONDON) -> float:
    return next_poll_seconds(local, scan_interval_minutes=scan, tz=tz, rng=random.Random(SEED))


def draw(low: float, high: float) -> float:
    """The value the schedule draws from a Random seeded like `poll`'s."""
    return random.Random(SEED).uniform(low, high)


def at(*args: int, tz: ZoneInfo = LONDON) -> datetime:
    return datetime(*args, tzinfo=tz)


# 2026-11-18 is a Wednesday, 2026-11-21 a Saturday, 2026-11-22 a Sunday.


def test_peak_evening_is_3_5_to_5_minutes() -> None:
    assert poll(at(2026, 11, 18, 19, 0)) == pytest.approx(draw(210, 300))
    for seed in range(50):
        value = next_poll_seconds(at(2026, 11, 18, 22, 0), scan_interval_minutes=5, tz=LONDON, rng=random.Random(seed))
        assert 210 <= value <= 300


def test_daytime_is_the_scan_interval_plus_minus_20_percent() -> None:
    assert poll(at(2026, 11, 18, 10, 0), scan=5) == pytest.approx(draw(240, 360))
    assert 240 <= poll(at(2026, 11, 18, 17, 0), scan=5) <= 360
    # A longer scan interval is cut at the next burst window (10:09:00 + 1 s margin).
    assert poll(at(2026, 11, 18, 10, 0), scan=20) == pytest.approx(541)


def test_night_draws_10_to_15_minutes_without_bursts() -> None:
    local = at(2026, 11, 18, 2, 0)
    assert 600 <= base_interval(local, 5, random.Random(SEED)) <= 900
    assert poll(local) == pytest.approx(draw(600, 900))
    assert poll(at(2026, 11, 18, 3, 59, 59)) == pytest.approx(draw(600, 900))


def test_weekends_are_15_percent_faster() -> None:
    assert poll(at(2026, 11, 21, 10, 0)) == pytest.approx(draw(240, 360) * 0.85)  # Saturday day
    assert poll(at(2026, 11, 22, 19, 0)) == pytest.approx(draw(210, 300) * 0.85)  # Sunday peak


@pytest.mark.parametrize(
    "local",
    [
        at(2026, 11, 18, 18, 54, 30),  # 6 minutes before 19:00
        at(2026, 11, 18, 6, 59, 59),  # from 06:00 on, after the night
        at(2026, 11, 18, 12, 9, 0),  # first second of the window before 12:15
        at(2026, 11, 18, 12, 44, 0),
        at(2026, 11, 21, 12, 29, 10),  # and on weekends (no 0.85 factor)
    ],
)
def test_burst_before_each_quarter_hour(local: datetime) -> None:
    assert poll(local) == 60.0


def test_just_before_a_burst_window_the_next_poll_lands_inside_it() -> None:
    assert poll(at(2026, 11, 18, 12, 8, 59)) == pytest.approx(2.0)
    assert poll(at(2026, 11, 18, 12, 5, 0)) == pytest.approx(min(draw(240, 360), 241))
    assert poll(at(2026, 11, 18, 12, 15, 0)) == pytest.approx(draw(240, 360))  # 12:15 itself is not a burst


def test_local_time_follows_daylight_saving() -> None:
    # 17:30 UTC is 18:30 BST in summer (peak) but 17:30 GMT in winter (day).
    summer = datetime(2026, 7, 15, 17, 30, tzinfo=timezone.utc)
    winter = datetime(2026, 1, 14, 17, 30, tzinfo=timezone.utc)
    assert poll(summer) == pytest.approx(draw(210, 300))
    assert poll(winter) == pytest.approx(draw(240, 360))
    # The day the clocks go forward (Sunday 2026-03-29): 17:30 UTC is already 18:30 local.
    change_day = datetime(2026, 3, 29, 17, 30, tzinfo=timezone.utc)
    assert poll(change_day) == pytest.approx(draw(210, 300) * 0.85)


def test_other_zones_and_weekday_by_local_date() -> None:
    # 23:00 UTC Friday is 08:00 Saturday in Tokyo: a weekend day.
    friday_utc = datetime(2026, 11, 20, 23, 0, tzinfo=timezone.utc)
    assert poll(friday_utc, tz=ZoneInfo("Asia/Tokyo")) == pytest.approx(draw(240, 360) * 0.85)
    # 23:00 Friday in London: past the 18:00-23:00 peak, before the night, not a weekend.
    assert poll(friday_utc, tz=LONDON) == pytest.approx(draw(240, 360))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        next_poll_seconds(datetime(2026, 11, 18, 12, 0), scan_interval_minutes=5, tz=LONDON, rng=random.Random(1))
