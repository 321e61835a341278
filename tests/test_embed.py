"""Rendering alerts as Discord embeds and as dry-run text: links, wording, and Discord's size limits."""
from __future__ import annotations

import re

import pytest

from notifier.discord import message
from notifier.drytext import render_text
from notifier.limits import clip, embed_chars, fit, pack
from notifier.render import COLOR_NEW_TIP, render
from shared.alerts import (
    ConsensusAlert,
    ConsensusMember,
    DigestAlert,
    DigestRow,
    CrowdShare,
    Dissent,
    HealthAlert,
    LineMovementAlert,
    MatchInfo,
    NewTipAlert,
    PredictorInfo,
    Record,
    SettledTip,
    StatsSummary,
    TipLine,
)
from tests.fakes.discord import embed_chars as fake_embed_chars
from tests.fakes.discord import validate_message

KICKOFF = 1_767_225_600  # 2026-01-01 00:00 UTC


def stats(total: int = 120, yield_pct: float = 12.34, win_rate: float = 55.5, profit: float = 14.8) -> StatsSummary:
    return StatsSummary(total=total, win_rate=win_rate, yield_pct=yield_pct, profit=profit, avg_odds=2.1)


def predictor(nickname: str = "TipMaster", **kw: object) -> PredictorInfo:
    return PredictorInfo(id="abc123", nickname=nickname, all_time=kw.get("all_time", stats()),
                         current=kw.get("current", stats(total=10, yield_pct=-5.0, win_rate=40.0, profit=-0.5)))


def match(**kw: object) -> MatchInfo:
    values: dict[str, object] = dict(event_id=12345, home="Arsenal", away="Chelsea", sport_slug="football",
                                     event_slug="arsenal-chelsea", custom_id="RsSxsR", start_ts=KICKOFF)
    values.update(kw)
    return MatchInfo(**values)  # type: ignore[arg-type]


def new_tip(**kw: object) -> NewTipAlert:
    return NewTipAlert(predictor=kw.get("predictor", predictor()), match=kw.get("match", match()),
                       tips=kw.get("tips", [TipLine(market="Full time", pick="Arsenal to win", odds=2.2)]))


def movement(tip_odds: float = 2.2, current_odds: float = 1.8) -> LineMovementAlert:
    return LineMovementAlert(predictor=predictor(), match=match(),
                             tip=TipLine(market="Full time", pick="Arsenal to win", odds=tip_odds),
                             tip_odds=tip_odds, current_odds=current_odds,
                             delta=(current_odds - tip_odds) / tip_odds)


def limits_ok(embed: dict) -> None:
    assert len(embed.get("title", "")) <= 256
    assert len(embed.get("description", "")) <= 4096
    assert len(embed.get("fields", [])) <= 25
    for field in embed.get("fields", []):
        assert 0 < len(field["name"]) <= 256 and 0 < len(field["value"]) <= 1024
    assert len(embed.get("footer", {}).get("text", "")) <= 2048
    assert len(embed.get("author", {}).get("name", "")) <= 256
    assert embed_chars(embed) <= 6000
    assert validate_message(message([embed])) == {}


# -- links ----------------------------------------------------------------------------------
def test_match_url_with_slugs_and_custom_id() -> None:
    embed = render(new_tip())
    assert embed["url"] == "https://www.sofascore.com/football/match/arsenal-chelsea/RsSxsR#id:12345"


@pytest.mark.parametrize("missing", ["sport_slug", "event_slug", "custom_id"])
def test_match_url_falls_back_to_event_page(missing: str) -> None:
    embed = render(new_tip(match=match(**{missing: None})))
    assert embed["url"] == "https://www.sofascore.com/event/12345"


def test_author_links_the_predictor_profile() -> None:
    embed = render(new_tip())
    assert embed["author"] == {"name": "TipMaster", "url": "https://www.sofascore.com/user/profile/abc123"}


# -- wording --------------------------------------------------------------------------------
def test_new_tip_title_description_and_stats() -> None:
    embed = render(new_tip(tips=[TipLine(market="Full time", pick="Arsenal to win", odds=2.2),
                                   TipLine(market="Both teams to score", pick="Yes", odds=None)]),
                     alert_id=7, created_at=KICKOFF - 3600)
    assert "New tip" in embed["title"] and "Arsenal vs Chelsea" in embed["title"]
    description = embed["description"]
    assert "Arsenal vs Chelsea" in description
    assert f"<t:{KICKOFF}:R>" in description and f"<t:{KICKOFF}:f>" in description
    assert "Full time" in description and "Arsenal to win" in description and "2.20" in description
    assert "Both teams to score" in description and "n/a" in description
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["All-time yield"] == "+12.3 %"
    assert fields["All-time win rate"].startswith("55.5 %")
    assert fields["All-time profit"] == "+14.80 u"
    assert fields["Current yield"] == "\u22125.0 %"
    assert fields["Current profit"] == "\u22120.50 u"
    assert embed["color"] == COLOR_NEW_TIP
    assert embed["timestamp"].startswith("2025-12-31T23:00:00")
    assert "#7" in embed["footer"]["text"]


def test_missing_stats_and_zero_totals() -> None:
    alert = new_tip(predictor=predictor(all_time=None, current=stats(total=0, yield_pct=0, win_rate=0, profit=0)))
    fields = {f["name"]: f["value"] for f in render(alert)["fields"]}
    assert fields == {"All-time": "no statistics", "Current": "no settled tips yet"}
    text = render_text(alert)
    assert "no statistics" in text and "no settled tips yet" in text


def test_line_movement_shows_both_odds_and_signed_delta() -> None:
    shortening = render(movement(2.2, 1.8))
    assert "Line movement" in shortening["title"] and "Arsenal vs Chelsea" in shortening["title"]
    assert "2.20 \u2192 1.80 (\u221218.2 %)" in shortening["description"]
    assert f"<t:{KICKOFF}:R>" in shortening["description"]
    drifting = render(movement(1.8, 2.2))
    assert "1.80 \u2192 2.20 (+22.2 %)" in drifting["description"]
    colors = {shortening["color"], drifting["color"], COLOR_NEW_TIP}
    assert len(colors) == 3


def test_health_alert_colour_by_level() -> None:
    embeds = {level: render(HealthAlert(title="Webhook broken", message="details", level=level))
              for level in ("info", "warning", "error")}
    assert len({e["color"] for e in embeds.values()}) == 3
    assert embeds["error"]["title"] == "Webhook broken" and embeds["error"]["description"] == "details"
    assert "author" not in embeds["error"] and "url" not in embeds["error"]


def test_markdown_in_names_is_escaped() -> None:
    embed = render(new_tip(match=match(home="*Bold*", away="_it_")))
    assert "\\*Bold\\*" in embed["description"]


def test_render_text_is_readable() -> None:
    text = render_text(movement(), alert_id=3)
    lines = text.splitlines()
    assert lines[0].startswith("[alert #3] [LINE MOVEMENT") and "Arsenal vs Chelsea" in lines[0]
    assert any("2.20 \u2192 1.80" in line for line in lines)
    assert any("2026-01-01 00:00 UTC" in line for line in lines)
    assert "https://www.sofascore.com/football/match/arsenal-chelsea/RsSxsR#id:12345" in text
    health = render_text(HealthAlert(title="Notifier started", message="hello", level="info"))
    assert "Notifier started" in health and "hello" in health


# -- limits -----------------------------------------------------------------------------------
def test_truncation_keeps_every_limit_for_absurd_input() -> None:
    huge = "W" * 5000
    alert = new_tip(predictor=predictor(nickname=huge), match=match(home=huge, away=huge),
                    tips=[TipLine(market=huge[:300], pick=f"pick {i} " + huge[:200], odds=1.5) for i in range(40)])
    embed = render(alert, alert_id=1)
    limits_ok(embed)
    assert embed["title"].endswith("\u2026") and embed["author"]["name"].endswith("\u2026")
    assert embed["description"].endswith("\u2026")
    assert embed_chars(embed) == fake_embed_chars(embed)


def test_truncated_line_movement_and_health_keep_limits() -> None:
    huge = "x" * 10000
    alert = movement()
    alert.tip.market = huge
    alert.match.home = huge
    limits_ok(render(alert))
    limits_ok(render(HealthAlert(title=huge, message=huge)))


def test_clip() -> None:
    assert clip("abc", 3) == "abc"
    assert clip("abcd", 3) == "ab\u2026"
    assert len(clip("a" * 9999, 256)) == 256


def test_fit_shrinks_an_embed_over_6000_characters() -> None:
    embed = {"title": "t" * 256, "description": "d" * 4096,
             "fields": [{"name": "n" * 256, "value": "v" * 1024} for _ in range(30)],
             "footer": {"text": "f" * 3000}, "author": {"name": "a" * 300}}
    limits_ok(fit(embed))


# -- packing ----------------------------------------------------------------------------------
def _ids(messages: list[list[dict]]) -> list[int]:
    return [int(re.search(r"#(\d+)", e["footer"]["text"]).group(1)) for m in messages for e in m]  # type: ignore[union-attr]


def test_pack_ten_embeds_per_message_in_order() -> None:
    embeds = [render(new_tip(), alert_id=i) for i in range(1, 26)]
    messages = pack(embeds)
    assert [len(m) for m in messages] == [10, 10, 5]
    assert _ids(messages) == list(range(1, 26))


def test_pack_respects_6000_characters_per_message() -> None:
    big = [TipLine(market="Market " + "m" * 80, pick="p" * 80, odds=2.0) for _ in range(20)]
    embeds = [render(new_tip(tips=big), alert_id=i) for i in range(1, 13)]
    assert all(embed_chars(e) > 1500 for e in embeds)
    messages = pack(embeds)
    assert len(messages) > 2
    for msg in messages:
        assert 1 <= len(msg) <= 10
        assert sum(embed_chars(e) for e in msg) <= 6000
        assert validate_message(message(msg)) == {}
    assert _ids(messages) == list(range(1, 13))


def test_pack_of_nothing_and_message_body() -> None:
    assert pack([]) == []
    body = message([{"title": "x"}])
    assert body == {"embeds": [{"title": "x"}], "allowed_mentions": {"parse": []}}


# -- the scorecard and consensus (issue 11) ---------------------------------------------------
def consensus(members: int = 3, huge: str = "") -> ConsensusAlert:
    return ConsensusAlert(
        match=match(), market="Full time", pick="Arsenal to win" + huge, best_odds=2.3,
        members=[ConsensusMember(predictor=predictor(f"Tipster{i}{huge}"), odds=2.1 + i / 10,
                                 record=Record(settled=40 + i, roi_pct=5.0, clv_pct=2.5, enough=True) if i else None,
                                 joined=i == members - 1) for i in range(members)],
        crowd=[CrowdShare(pick="Arsenal", pct=61.2), CrowdShare(pick="Draw", pct=20.1), CrowdShare(pick="Chelsea",
                                                                                                     pct=18.7)],
        dissent=[Dissent(nickname="Contrarian" + huge, pick="Chelsea to win", odds=3.4)])


def test_a_new_tip_quotes_our_record_and_the_price_now() -> None:
    alert = new_tip(tips=[TipLine(market="Full time", pick="Arsenal to win", odds=2.2, current_odds=2.05)])
    alert.record = Record(settled=12, roi_pct=8.06, clv_pct=-1.25, enough=False)
    for text in (render(alert)["description"], render_text(alert)):
        assert "Arsenal to win" in text and "2.20 (now 2.05)" in text
        assert "Our record: 12 settled, ROI +8.1%, CLV -1.2% (too few to judge)" in text
    assert "Our record" not in render(new_tip())["description"] and "(now" not in render(new_tip())["description"]


def test_a_consensus_alert_lists_each_predictor_the_best_price_the_crowd_and_the_dissent() -> None:
    embed = render(consensus(), alert_id=9)
    assert embed["title"] == "Consensus: 3 top predictors on Arsenal to win (Full time): Arsenal vs Chelsea"
    description = embed["description"]
    assert "Tipster0 @ 2.10\n" in description + "\n"
    assert "Tipster1 @ 2.20: 41 settled, ROI +5.0%, CLV +2.5%" in description
    assert "Tipster2 @ 2.30: 42 settled, ROI +5.0%, CLV +2.5%  (new)" in description
    assert "Best price now: 2.30" in description
    assert "Sofascore users: Arsenal 61 %, Draw 20 %, Chelsea 19 %" in description
    assert "Dissent: Contrarian on Chelsea to win @ 3.40" in description
    text = render_text(consensus(), alert_id=9)
    assert text.startswith("[alert #9] [CONSENSUS] Arsenal vs Chelsea\nConsensus: 3 top predictors")
    limits_ok(embed)
    limits_ok(render(consensus(members=60, huge="W" * 300)))


def digest(tips: int = 3, predictors: int = 2, huge: str = "") -> DigestAlert:
    results = ["won", "lost", "void"]
    return DigestAlert(
        day="2026-11-21",
        settled=[SettledTip(nickname=f"Tipster{i % 5}{huge}", match="Arsenal vs Chelsea", market="Full time",
                            pick="Arsenal to win", odds=2.2, closing_odds=2.05 if i == 0 else None,
                            result=results[i % 3]) for i in range(tips)],  # type: ignore[arg-type]
        predictors=[DigestRow(nickname=f"Tipster{i}{huge}", alerted=10 + i,
                              record=Record(settled=8, roi_pct=12.5, clv_pct=3.0) if i else None)
                    for i in range(predictors)])


def test_the_daily_digest_lists_the_settled_tips_and_each_predictor_s_record() -> None:
    embed = render(digest())
    assert embed["title"] == "Daily digest 2026-11-21: 3 settled (1 won, 1 lost)"
    lines = embed["description"].splitlines()
    assert lines[0] == "\u2705 Tipster0: Arsenal vs Chelsea, Full time: Arsenal to win @ 2.20 (closed 2.05)"
    assert lines[1].startswith("\u274c Tipster1") and lines[2].startswith("\u2796 Tipster2")
    assert [(f["name"], f["value"]) for f in embed["fields"]] == [
        ("Tipster0", "10 alerted; nothing settled yet"),
        ("Tipster1", "11 alerted; 8 settled, ROI +12.5%, CLV +3.0% (too few to judge)")]
    assert "[DIGEST] Daily digest 2026-11-21" in render_text(digest())
    assert "no alerted tip was settled that day" in render(digest(tips=0))["description"]


def test_a_huge_digest_keeps_whole_lines_and_discord_s_limits() -> None:
    embed = render(digest(tips=500, predictors=40, huge="W" * 40))
    limits_ok(embed)
    assert "\u2026 and " in embed["description"] and " more settled tips" in embed["description"]
    assert all(line.startswith(("\u2705", "\u274c", "\u2796", "\u2026")) for line in
               embed["description"].split("\n\n")[0].splitlines())
    assert embed["fields"][-1]["name"] == "\u2026 and 16 more predictors"  # 24 fields and the count


def test_a_digest_of_many_long_nicknames_still_counts_the_predictors_left_out() -> None:
    embed = render(digest(tips=500, predictors=40, huge="W" * 200))
    limits_ok(embed)
    names = [f["name"] for f in embed["fields"]]
    shown = len(names) - 1
    assert names[-1] == f"\u2026 and {40 - shown} more predictors" and 0 < shown < 24
    assert all(name.startswith("Tipster") and len(name) <= 64 for name in names[:-1])
