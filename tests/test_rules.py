"""Pure rules of the processor: alertability, movement, market mapping."""
from __future__ import annotations

from fractions import Fraction

import pytest

from processor.alertable import Judge, group_by_match, is_alertable, movement_applies
from processor.deleted import is_gone
from processor.movement import (
    all_prices,
    current_price,
    decide,
    delta,
    unreadable_prices,
)
from shared.markets import choice_name, pick_label
from shared.models import EventOdds, Prediction, PredictionsPage
from shared.prices import decimal_of, parse_fraction
from shared.tips import tip_key
from tests.fakes.sofascore import REF_NOW, load_fixture

GURU = "6a1f0c2e9b3d4e5f60718293"


def _page(name: str) -> PredictionsPage:
    return PredictionsPage.model_validate(load_fixture(name))


def _by_event(page: PredictionsPage, event_id: int) -> Prediction:
    return next(p for p in page.predictions if p.event_id == event_id)


def test_alertable_follows_status_lookahead_and_grace() -> None:
    page = _page(f"user-{GURU}-page0.json")
    soon, started, far = _by_event(page, 15979901), _by_event(page, 15976650), _by_event(page, 15981204)
    assert is_alertable(soon, REF_NOW, 24, 5)  # +3 h
    assert not is_alertable(soon, REF_NOW, 2, 5)  # beyond a 2 h look-ahead
    assert not is_alertable(far, REF_NOW, 24, 5)  # ~111 days ahead: later, once within
    assert is_alertable(far, far.start_date_timestamp - 3600, 24, 5)
    assert not is_alertable(started, REF_NOW, 24, 5)  # kicked off 25 min ago
    assert is_alertable(started, REF_NOW, 24, 30)  # inside a 30 min grace period


@pytest.mark.parametrize("status", ["finished", "canceled", "postponed"])
def test_finished_canceled_postponed_never_alert(status: str) -> None:
    tip = _by_event(_page(f"user-{GURU}-page0.json"), 15979901).model_copy(deep=True)
    tip.status.type = status
    assert not is_alertable(tip, REF_NOW, 24, 5)


def test_tip_identity_falls_back_without_id() -> None:
    page = _page("user-5e8d7c6b5a4f3e2d1c0b9a87-page0.json")
    no_id = _by_event(page, 15943002)
    assert no_id.id is None
    assert tip_key("u1", no_id) == f"u1:15943002::{no_id.vote}"
    assert tip_key("u1", _by_event(page, 15981377)).startswith("u1:6a2b")


def test_two_tips_on_one_match_group_together() -> None:
    page = _page(f"user-{GURU}-page0.json")
    groups = group_by_match(page.predictions)
    assert [p.vote for p in groups[15981204]] == ["1", "yes"]
    assert len(groups) == 3


def test_fractions_give_exact_decimal_odds() -> None:
    assert float(decimal_of("6/5")) == pytest.approx(2.2)
    assert decimal_of("6/5", 9.99) == Fraction(11, 5)
    assert decimal_of(None, 2.5) == Fraction(5, 2)
    assert decimal_of(None, None) is None


@pytest.mark.parametrize("text, fraction", [
    ("6/5", Fraction(6, 5)), ("100/30", Fraction(10, 3)), (" 6 / 5 ", Fraction(6, 5)), ("2", Fraction(2)),
    ("EVS", Fraction(1)), ("Evens", Fraction(1)), ("evens", Fraction(1)), ("Even", Fraction(1)),
    # A decimal point means decimal odds: 2.50 pays 1.50 per unit staked, the fraction 3/2.
    ("2.50", Fraction(3, 2)), ("1.8", Fraction(4, 5)), ("11.00", Fraction(10)),
    ("1.00", None), ("0.5", None),  # decimal odds are above 1
    ("2,50", None), ("6/0", None), ("-1/2", None), ("1e5", None), ("abc", None), ("", None), ("6/5/4", None),
])
def test_price_formats(text: str, fraction: Fraction | None) -> None:
    assert parse_fraction(text) == fraction
    assert decimal_of(text) == (1 + fraction if fraction is not None else None)


def test_unreadable_prices_are_named_by_market() -> None:
    odds = load_fixture("event-15981204-odds-all.json")
    odds["markets"][0]["choices"][0]["fractionalValue"] = "EVS"
    odds["markets"][0]["choices"][1]["fractionalValue"] = "13-5"
    parsed = EventOdds.model_validate(odds)
    assert unreadable_prices(parsed) == {1: ["X: '13-5'"]}
    home = next(p for p in all_prices(parsed) if p.market_id == 1 and p.choice == "1")
    assert home.decimal == 2 and home.fractional == "EVS"


def test_movement_found_for_each_market_kind() -> None:
    odds = all_prices(EventOdds.model_validate(load_fixture("event-15981204-odds-all.json")))
    home_win = current_price(odds, "1", 1, "Northbridge FC", "Eastvale United")
    assert home_win is not None and home_win.decimal == Fraction(9, 5)
    assert float(delta(Fraction(11, 5), home_win.decimal)) == pytest.approx(-0.1818, abs=1e-4)
    btts = current_price(odds, "yes", 5, "Northbridge FC", "Eastvale United")
    assert btts is not None and btts.fractional == "8/11"
    other = all_prices(EventOdds.model_validate(load_fixture("event-15981377-odds-all.json")))
    no_goal = current_price(other, "noGoal", 6, "Real Costa Azul", "Atlético Serrania")
    assert no_goal is not None and no_goal.decimal == 10
    first_home = current_price(other, "1", 6, "Real Costa Azul", "Atlético Serrania")
    assert first_home is not None and first_home.choice == "Real Costa Azul"
    assert current_price(other, "1", 99, "a", "b") is None
    # A suspended market offers no price to compare with (it stays in the history).
    suspended = load_fixture("event-15981204-odds-all.json")
    suspended["markets"][0]["suspended"] = True
    assert current_price(all_prices(EventOdds.model_validate(suspended)), "1", 1, "Northbridge FC",
                         "Eastvale United") is None


def test_alert_once_and_rearm_below_half_threshold() -> None:
    armed = True
    seen = []
    for d in ["-0.10", "-0.16", "-0.20", "-0.10", "-0.07", "0.15", "0.15"]:
        decision = decide(Fraction(d), armed, 0.15)
        seen.append(decision.alert)
        armed = decision.armed
    assert seen == [False, True, False, False, False, True, False]


def test_pick_labels_and_choice_names() -> None:
    assert pick_label("1", 1, "A", "B") == "A to win"
    assert pick_label("X", 1, "A", "B") == "Draw"
    assert pick_label("noGoal", 6, "A", "B") == "No goal"
    assert pick_label("yes", 5, "A", "B") == "Yes"
    assert choice_name("yes", 5, "A", "B") == "Yes"
    assert choice_name("2", 6, "A", "B") == "B"
    assert choice_name("2", None, "A", "B") is None


def test_live_processing_judges_at_fetch_and_processing_time_replay_at_fetch_time() -> None:
    soon = _by_event(_page(f"user-{GURU}-page0.json"), 15979901)  # +3 h
    assert Judge(24, 5, None).alertable([soon], REF_NOW) == [soon]
    assert Judge(24, 5, lambda: REF_NOW + 600).alertable([soon], REF_NOW) == [soon]
    assert Judge(24, 5, lambda: REF_NOW + 4 * 3600).alertable([soon], REF_NOW) == []  # kicked off meanwhile
    # A processing clock behind the fetch time never judges earlier than the fetch.
    assert Judge(24, 5, lambda: REF_NOW - 60).times(REF_NOW) == [REF_NOW, REF_NOW]


def test_line_movement_applies_until_kick_off() -> None:
    assert movement_applies(REF_NOW + 1, REF_NOW)
    assert not movement_applies(REF_NOW, REF_NOW)  # the kick-off instant counts as started
    assert not movement_applies(REF_NOW - 1, REF_NOW)


def test_line_movement_is_judged_at_fetch_and_processing_time_replay_at_fetch_time() -> None:
    kick_off = REF_NOW + 60
    assert Judge(24, 5, lambda: REF_NOW + 30).movement_applies(kick_off, REF_NOW)
    assert not Judge(24, 5, lambda: REF_NOW + 120).movement_applies(kick_off, REF_NOW)  # processed after kick-off
    assert Judge(24, 5, None).movement_applies(kick_off, REF_NOW)  # a replay: fetch time only
    assert not Judge(24, 5, None).movement_applies(kick_off, kick_off)


# -- a deferred tip deleted by its predictor (processor.deleted) -------------------------------------------

KNOWN = ["a", "b", "T", "c", "d"]  # tip T's page when it was first seen


@pytest.mark.parametrize(("page", "page_no", "has_next", "gone"), [
    (["a", "b", "c", "d"], 3, True, True),  # between b and c, where it was: gone
    (["z", "b", "c"], 1, True, True),  # b above, c below
    (["x", "y", "a", "b"], 2, True, False),  # b ends the page: T may open the next one
    (["x", "y", "a", "b"], 2, False, True),  # ...unless there is no next one
    (["x", "y", "a", "b"], 2, None, False),  # hasNextPage absent proves nothing
    (["c", "d", "e"], 2, True, False),  # c opens the page: T may end the previous one
    (["c", "d", "e"], 0, True, True),  # ...unless this is page 0: nothing is above c
    (["z", "c", "d"], 2, True, True),  # z is directly above c, so above T too
    (["b", "q"], 4, True, True),  # q is directly below b: T would be between them
    (["p", "q"], 0, False, True),  # the whole list, and T not on it
    (["p", "q"], 0, None, False),
    (["p", "q"], 1, False, False),  # page 1 only: T may be on page 0
    (["c", "b", "d"], 1, True, False),  # not in the order they had: nothing can be told
    ([], 0, False, False),  # an empty page proves nothing
    (["a", "b", "T", "c"], 1, True, False),  # it is there
])
def test_a_deferred_tip_is_gone_only_when_its_place_is_on_the_page(
        page: list[str], page_no: int, has_next: bool | None, gone: bool) -> None:
    assert is_gone("T", KNOWN, page, page_no, has_next) is gone
