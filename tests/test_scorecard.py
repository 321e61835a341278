"""Settlement, ROI and CLV as pure rules: every edge the issue names, figures computed by hand."""
from __future__ import annotations

import pytest

from shared.alerts import Record
from shared.scorecard import Figures, TipRecord, figures, settle


@pytest.mark.parametrize(("status", "correct", "result"), [
    ("finished", 1, "won"),
    ("finished", 0, "lost"),
    ("finished", -1, "lost"),
    ("canceled", None, "void"),
    ("canceled", 1, "void"),
    ("postponed", None, None),
    ("inprogress", 1, None),
    ("notstarted", None, None),
    ("finished", None, None),  # finished, but no verdict yet: open, not guessed
    ("finished", 2, None),  # a verdict we do not know
    (None, 1, None),
])
def test_settle(status: str | None, correct: int | None, result: str | None) -> None:
    assert settle(status, correct) == result


def test_figures_by_hand() -> None:
    tips = [
        TipRecord(2.20, "won", closing=2.00),  # +1.20; CLV +10 %
        TipRecord(3.25, "lost", closing=3.50),  # -1; CLV -7.142857 %
        TipRecord(1.91, "won"),  # +0.91; no closing price
        TipRecord(None, "won"),  # no odds: won, but pays nothing we know
        TipRecord(2.50, "void", closing=2.50),  # void: no stake; CLV 0 (not above the close)
        TipRecord(1.80, None, closing=1.60),  # open; CLV +12.5 %
    ]
    f = figures(tips)
    assert (f.alerted, f.settled, f.won, f.lost, f.void) == (6, 5, 3, 1, 1)
    assert f.roi_pct == pytest.approx(100 * (1.20 - 1 + 0.91) / 3)
    assert f.clv_pct == pytest.approx(100 * (0.10 - 0.25 / 3.5 + 0 + 0.125) / 4)
    assert f.beat_close_pct == pytest.approx(50.0)


def test_no_settled_tip_and_no_closing_price_give_nulls() -> None:
    f = figures([TipRecord(2.0, None), TipRecord(None, "void")])
    assert f.roi_pct is None and f.clv_pct is None and f.beat_close_pct is None
    assert f.as_dict() == {"alerted": 2, "settled": 1, "won": 0, "lost": 0, "void": 1, "roi_pct": None,
                           "clv_pct": None, "beat_close_pct": None}
    assert figures([]).alerted == 0


def test_the_alert_line_says_when_there_are_too_few() -> None:
    assert Record.of(figures([TipRecord(2.0, None)]), 30) is None
    few = figures([TipRecord(2.0, "won", closing=1.8), TipRecord(2.0, "lost")])
    assert Record.of(few, 30).text() == "2 settled, ROI +0.0%, CLV +11.1% (too few to judge)"  # type: ignore[union-attr]
    assert Record.of(few, 2).text() == "2 settled, ROI +0.0%, CLV +11.1%"  # type: ignore[union-attr]
    assert isinstance(few, Figures) and few.enough(2) and not few.enough(3)
