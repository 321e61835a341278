"""The consensus rule with no servers: three on a pick make one alert, a fourth one more, re-reads none."""
from __future__ import annotations

from processor.consensus import Tip, consensus


def ids(tips: list[Tip], announced: set[tuple[int | None, str, str]], *, kicked_off: bool = False,
        minimum: int = 3) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    return [(c.members, c.joined) for c in consensus(tips, announced, minimum, kicked_off)]


def test_three_make_one_a_fourth_one_more_and_a_re_read_none() -> None:
    tips = [Tip("a", 1, "1"), Tip("b", 1, "1"), Tip("c", 1, "1")]
    assert ids(tips[:2], set()) == []
    assert ids(tips, set()) == [(("a", "b", "c"), ("a", "b", "c"))]
    announced = {(1, "1", p) for p in "abc"}
    assert ids(tips, announced) == []  # read again: nothing new
    tips.append(Tip("d", 1, "1"))
    assert ids(tips, announced) == [(("a", "b", "c", "d"), ("d",))]


def test_one_predictor_counts_once_and_picks_are_apart() -> None:
    tips = [Tip("a", 1, "1"), Tip("a", 1, "1"), Tip("b", 1, "1"), Tip("c", 5, "yes"), Tip("c", 1, "X")]
    assert ids(tips, set()) == []


def test_case_of_the_pick_does_not_split_it_and_dissent_is_the_same_market() -> None:
    tips = [Tip("a", 5, "yes"), Tip("b", 5, "Yes"), Tip("c", 5, "YES"), Tip("d", 5, "no"), Tip("e", 1, "2")]
    [found] = consensus(tips, set(), 3, kicked_off=False)
    assert found.pick == "yes" and found.members == ("a", "b", "c")
    assert found.dissent == (Tip("d", 5, "no"),)


def test_none_once_kicked_off() -> None:
    tips = [Tip(p, 1, "1") for p in "abc"]
    assert ids(tips, set(), kicked_off=True) == []
