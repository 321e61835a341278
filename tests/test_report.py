"""`sofamon report` over results and closing prices as stored (shared/settlements.py), on both databases.

The figures through the whole pipeline (pages, odds polls, finished matches) are tested in
tests/test_scorecard_pipeline.py; here the storage rules: once settled stays settled, the latest price
before kick-off is the closing one, the window is on the alert's time.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from shared import outbox, settlements
from shared.alerts import HealthAlert
from shared.settings import Settings
from shared.storage import Database, Tx
from sofamon.cli import main

NOW = 1_795_348_800.0
DAY = 86_400.0


def tip(tx: Tx, key: str, predictor: str, odds: float | None, *, alerted_at: float, start: float, vote: str = "1",
        vote_type: int | None = None, home: str = "A", away: str = "B") -> None:
    """An alerted tip (its alert a stand-in) on an event of its own."""
    alert_id = outbox.insert(tx, HealthAlert(title="t", message="m"), webhook="main", created_at=alerted_at)
    tx.execute("INSERT INTO tips (tip_key, predictor_id, event_id, vote, vote_type, odds_decimal, start_ts, home, away,"
               " alert_id, created_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'alerted')",
               (key, predictor, event_of(key), vote, vote_type, odds, int(start), home, away, alert_id, alerted_at))


def event_of(key: str) -> int:
    """The event of the tip `tip` made under this key."""
    return abs(hash(key)) % 10**9


def predictor(tx: Tx, pid: str, nickname: str) -> None:
    tx.execute("INSERT INTO predictors (id, nickname, slug, stats, updated_at) VALUES (?, ?, NULL, '{}', 0)",
               (pid, nickname))


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str, db: Database,
             monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = make_settings(database_url=database_url, scorecard_min_settled=3)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SCORECARD_MIN_SETTLED", "3")
    return settings


def report(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["report", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_results_are_recorded_once_and_the_last_price_before_kick_off_closes(
        settings: Settings, db: Database, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.time", lambda: NOW)
    start = NOW - DAY
    with db.tx() as tx:
        predictor(tx, "p1", "GoalGuru_88")
        predictor(tx, "p2", "Tactico.ES")
        tip(tx, "won", "p1", 2.20, alerted_at=NOW - 2 * DAY, start=start)
        tip(tx, "lost", "p1", 3.25, alerted_at=NOW - 2 * DAY, start=start)
        tip(tx, "void", "p1", 1.50, alerted_at=NOW - 2 * DAY, start=start)
        tip(tx, "in play", "p2", 1.80, alerted_at=NOW - 2 * DAY, start=NOW - 3600)
        tip(tx, "open", "p2", 2.50, alerted_at=NOW - 2 * DAY, start=NOW + DAY)
        tip(tx, "old", "p2", 9.00, alerted_at=NOW - 40 * DAY, start=NOW - 39 * DAY)  # out of the 30 days
    with db.tx() as tx:
        # Prices of the won tip's pick: 2.10 then 2.00 before kick-off, 1.50 after (in play: not a closing price).
        assert settlements.record_closing(tx, "won", 2.00, start - 60)
        assert not settlements.record_closing(tx, "won", 2.10, start - 3600)  # older than the one kept (a replay)
        assert not settlements.record_closing(tx, "won", 1.50, start + 60)
        assert settlements.record_closing(tx, "lost", 3.50, start - 600)
        assert settlements.record_closing(tx, "in play", 1.60, NOW - 7200)
        assert settlements.record_closing(tx, "open", 2.00, NOW - 60)  # the latest price, not yet a closing one
    with db.tx() as tx:
        assert settlements.record_results(tx, [("won", "won"), ("lost", "lost"), ("old", "won")], NOW) == 3
        assert settlements.record_results(tx, [("won", "lost")], NOW) == 0  # read again: settled stays settled
        assert settlements.void_event(tx, int(tx.one("SELECT event_id FROM tips WHERE tip_key = 'void'")[0]), NOW) == 1
        assert not settlements.record_closing(tx, "lost", 3.00, start - 300)  # settled: its closing price is final
    got = report(capsys)
    p2, p1 = got["predictors"]  # best CLV first
    assert (p1["nickname"], p1["alerted"], p1["settled"], p1["won"], p1["lost"], p1["void"]) == (
        "GoalGuru_88", 3, 3, 1, 1, 1)
    assert p1["roi_pct"] == pytest.approx(100 * (1.20 - 1) / 2)
    assert p1["clv_pct"] == pytest.approx(100 * ((2.20 / 2.00 - 1) + (3.25 / 3.50 - 1)) / 2)
    assert p1["beat_close_pct"] == pytest.approx(50.0) and p1["enough_settled"] is True
    assert (p2["alerted"], p2["settled"], p2["roi_pct"], p2["enough_settled"]) == (2, 0, None, False)
    assert p2["clv_pct"] == pytest.approx(100 * (1.80 / 1.60 - 1))
    assert got["total"]["alerted"] == 5 and got["total"]["settled"] == 3
    # p2's CLV is better: it comes first in the table; --predictor takes a nickname too.
    assert main(["report"]) == 0
    text = capsys.readouterr().out
    assert text.index("Tactico.ES") < text.index("GoalGuru_88") and "too few to judge" in text
    assert [p["id"] for p in report(capsys, "--predictor", "goalguru_88")["predictors"]] == ["p1"]
    assert report(capsys, "--since", "60d")["total"]["alerted"] == 6
    # The record a new-tip alert quotes: each predictor's settled tips, whenever alerted, kept as running sums.
    with db.read() as tx:
        p1_record, p2_record = settlements.record_of(tx, "p1"), settlements.record_of(tx, "p2")
    assert p1_record is not None and p2_record is not None
    assert (p2_record.settled, p2_record.roi_pct) == (1, pytest.approx(800.0))  # the old tip, out of report's 30 days
    assert (p1_record.settled, p1_record.won, p1_record.lost, p1_record.void) == (3, 1, 1, 1)
    assert (p1_record.roi_pct, p1_record.clv_pct) == (pytest.approx(p1["roi_pct"]), pytest.approx(p1["clv_pct"]))


def test_an_empty_report_and_a_bad_window(settings: Settings, db: Database,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert report(capsys) == {"predictors": [], "total": {"alerted": 0, "settled": 0, "won": 0, "lost": 0, "void": 0,
                                                          "roi_pct": None, "clv_pct": None, "beat_close_pct": None,
                                                          "enough_settled": False}, "min_settled": 3}
    assert main(["report"]) == 0
    assert "no alerted tips in the last 30d" in capsys.readouterr().out
    assert main(["report", "--since", "yesterday-ish"]) == 2
    assert "sofamon report:" in capsys.readouterr().err
