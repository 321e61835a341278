"""The odds cadence as a pure rule with a fixed clock: every band edge, the closing poll, never after kick-off."""
from __future__ import annotations

import pytest

from fetcher.cadence import Cadence, odds_due
from shared.settings import Settings

H, M = 3600.0, 60.0
KICKOFF = 1_800_000_000.0
DEFAULTS = Cadence.of(Settings(_env_file=None))


def due(to_go: float, since: float | None, no_odds: bool = False, cadence: Cadence = DEFAULTS) -> bool:
    now = KICKOFF - to_go
    return odds_due(cadence, KICKOFF, now, None if since is None else now - since, no_odds)


def test_defaults_are_the_issue_bands() -> None:
    assert DEFAULTS == Cadence(slow_beyond=12 * H, slow_every=2 * H, mid_every=30 * M, every_cycle_within=2 * H,
                               closing_within=10 * M)


@pytest.mark.parametrize("to_go", [30 * 24 * H, 12 * H + 1, 12 * H, 3 * H, 2 * H, 11 * M, 10 * M, 1])
def test_never_fetched_is_due_at_once(to_go: float) -> None:
    assert due(to_go, None)


@pytest.mark.parametrize("to_go", [0, -1, -2 * H])
def test_never_after_kick_off(to_go: float) -> None:
    assert not due(to_go, None) and not due(to_go, 3 * H) and not due(to_go, 3 * H, no_odds=True)


def test_slow_band_more_than_12_hours_away() -> None:
    assert not due(12 * H + 1, 2 * H - 1)
    assert due(12 * H + 1, 2 * H)
    assert not due(5 * 24 * H, 30 * M)


def test_mid_band_from_12_to_2_hours() -> None:
    assert not due(12 * H, 30 * M - 1)  # 12 h exactly is in the mid band
    assert due(12 * H, 30 * M)
    assert not due(2 * H + 1, 30 * M - 1)
    assert due(2 * H + 1, 30 * M)


def test_every_cycle_in_the_last_2_hours() -> None:
    assert due(2 * H, 1)
    assert due(30 * M, 1)
    assert due(11 * M, 0)


def test_closing_poll_once_inside_the_last_10_minutes() -> None:
    # Without the every-cycle band, only the closing poll brings a near event back within 30 minutes.
    closing_only = Cadence(slow_beyond=12 * H, slow_every=2 * H, mid_every=30 * M, every_cycle_within=0,
                           closing_within=10 * M)
    assert not due(10 * M + 1, 5 * M, cadence=closing_only)
    assert due(10 * M, 5 * M, cadence=closing_only)  # last fetch 15 min before kick-off: due inside
    assert due(1, 20 * M, cadence=closing_only)
    assert not due(9 * M, 1 * M, cadence=closing_only)  # last fetch at 10 min: already the closing poll
    assert not due(5 * M, 5 * M - 1, cadence=closing_only)
    assert not due(0, 20 * M, cadence=closing_only)


def test_no_odds_drops_to_the_slowest_band() -> None:
    for to_go in (3 * 24 * H, 6 * H, 1 * H, 5 * M):
        assert not due(to_go, 2 * H - 1, no_odds=True)
        assert due(to_go, 2 * H, no_odds=True)
