"""The scorecard through the whole pipeline, on both databases: tips alerted, odds polled before kick-off at
two prices (the later one closes), matches finished with each `correct` value and one canceled; then
`sofamon report --json` gives exactly the figures worked out by hand below."""
from __future__ import annotations

from typing import Any

import pytest
import redis

from fetcher.cycle import Fetcher
from shared.settings import Settings
from shared.storage import Database
from sofamon.cli import main
from tests.fakes.sofascore import REF_NOW, FakeSofascore, load_fixture
from tests.test_fetcher import Clock
from tests.test_report import report
from tests.test_settling import GURU, fake, process, world  # noqa: F401, F811  (fixtures)

KICKOFF = int(REF_NOW) + 2 * 3600
# Tip, match, pick, tip price; its match's price at the first poll and at the last poll before kick-off.
TIPS = [("a", 15_990_001, "1", "6/5", "11/10", "1/1"),  # 2.20; closes 2.00
        ("b", 15_990_002, "X", "12/5", "5/2", "3/1"),  # 3.40; closes 4.00
        ("c", 15_990_003, "2", "4/5", "3/4", "4/6"),  # 1.80; closes 1.6667
        ("d", 15_990_004, "1", "3/2", "7/5", "6/4")]  # 2.50; closes 2.50 (canceled: void)
FINISHED = {"code": 100, "description": "Ended", "type": "finished"}


def tip(tip_id: str, event_id: int, vote: str, fractional: str) -> dict[str, Any]:
    template = load_fixture(f"user-{GURU}-page0.json")["predictions"][0]
    num, den = fractional.split("/")
    return {**template, "id": tip_id, "eventId": event_id, "customId": f"c{event_id}", "startDateTimestamp": KICKOFF,
            "vote": vote, "voteType": 1, "odds": {"decimalValue": f"{1 + int(num) / int(den):.2f}",
                                                  "fractionalValue": fractional}}


def full_time(vote: str, fractional: str) -> dict[str, Any]:
    """Full-time odds with `fractional` on `vote` and long prices on the other two picks."""
    choices = [{"name": name, "fractionalValue": fractional if name == vote else "9/1"} for name in ("1", "X", "2")]
    return {"markets": [{"id": 1, "marketId": 1, "marketName": "Full time", "suspended": False, "choices": choices}]}


def test_report_gives_the_figures_worked_out_by_hand(world: tuple[Settings, Clock, Fetcher, Database],
                                                     database_url: str, fake: FakeSofascore, redis_conn: redis.Redis,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    settings, clock, fetcher, db = world
    fake.set_feed(GURU, [tip(t, event, vote, price) for t, event, vote, price, _, _ in TIPS])
    for _, event, vote, _, first, _ in TIPS:
        fake.add_event_odds(event, full_time(vote, first))

    def cycle(at: float) -> None:
        clock.now = at
        fetcher.run_cycle()
        process(settings, redis_conn, db, clock)

    cycle(REF_NOW)  # the tips alert
    cycle(REF_NOW + 300)  # their odds' first poll
    for _, event, vote, _, _, closing in TIPS:
        fake.add_event_odds(event, full_time(vote, closing))
    cycle(KICKOFF - 300)  # the closing poll, in the last ten minutes
    for _, event, vote, _, _, _ in TIPS:
        fake.add_event_odds(event, full_time(vote, "50/1"))  # in play: never asked, never a closing price
    cycle(KICKOFF + 600)
    assert sum(fake.hits(f"/event/{event}/odds/1/all") for _, event, *_ in TIPS) == 8
    fake.update_event(15_990_001, status=FINISHED, correct=1)
    fake.update_event(15_990_002, status=FINISHED, correct=0)
    fake.update_event(15_990_003, status=FINISHED, correct=-1)
    fake.update_event(15_990_004, status={"code": 70, "description": "Canceled", "type": "canceled"})
    cycle(KICKOFF + 2 * 3600)

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr("time.time", lambda: KICKOFF + 3 * 3600.0)
    got = report(capsys)
    [guru] = got["predictors"]
    assert {k: guru[k] for k in ("nickname", "alerted", "settled", "won", "lost", "void")} == {
        "nickname": "GoalGuru_88", "alerted": 4, "settled": 4, "won": 1, "lost": 2, "void": 1}
    # ROI over won and lost at flat stakes: (2.20 - 1) - 1 - 1 over 3 tips.
    assert guru["roi_pct"] == pytest.approx(100 * (1.20 - 2) / 3)
    # CLV over the four closing prices: 2.20/2.00, 3.40/4.00, 1.80/(1 + 4/6), 2.50/2.50; two beat the close.
    assert guru["clv_pct"] == pytest.approx(100 * ((2.2 / 2.0 - 1) + (3.4 / 4.0 - 1) + (1.8 / (1 + 4 / 6) - 1)
                                                    + (2.5 / 2.5 - 1)) / 4)
    assert guru["beat_close_pct"] == pytest.approx(50.0)
    assert guru["enough_settled"] is False and got["min_settled"] == 30
    assert {k: got["total"][k] for k in guru if k not in ("id", "nickname")} == {
        k: v for k, v in guru.items() if k not in ("id", "nickname")}
    assert main(["report"]) == 0 and "GoalGuru_88" in capsys.readouterr().out
