"""How an alert's parts read, the same in Discord embeds and in the dry-run text: links, names and odds.

Pure: no I/O.
"""
from __future__ import annotations

from urllib.parse import quote

from shared.alerts import ConsensusAlert, DigestAlert, DigestRow, MatchInfo, PredictorInfo, Record, StatsSummary, TipLine

SITE = "https://www.sofascore.com"
MINUS = "\u2212"


def match_url(match: MatchInfo) -> str:
    """The match page; the plain event URL when a slug or the custom id is missing."""
    if match.sport_slug and match.event_slug and match.custom_id:
        return (f"{SITE}/{quote(match.sport_slug, safe='-_')}/match/{quote(match.event_slug, safe='-_')}"
                f"/{quote(match.custom_id, safe='-_')}#id:{match.event_id}")
    return f"{SITE}/event/{match.event_id}"


def profile_url(predictor: PredictorInfo) -> str:
    return f"{SITE}/user/profile/{quote(predictor.id, safe='-_')}"


def match_name(match: MatchInfo) -> str:
    return f"{match.home} vs {match.away}"


def format_odds(odds: float | None) -> str:
    return f"{odds:.2f}" if odds is not None else "n/a"


def delta_pct(tip_odds: float, current_odds: float) -> float:
    """Change of the price in percent of the tip's price (negative: shortened)."""
    if not tip_odds:
        return 0.0
    return (current_odds - tip_odds) / tip_odds * 100


def signed(value: float, digits: int = 1) -> str:
    """`+4.2` / `−18.2` (a real minus sign, as Discord renders it clearly)."""
    text = f"{abs(value):.{digits}f}"
    if float(text) == 0:
        return text
    return ("+" if value > 0 else MINUS) + text


def movement_text(tip_odds: float, current_odds: float) -> str:
    """`2.20 → 1.80 (−18.2 %)`."""
    return f"{tip_odds:.2f} \u2192 {current_odds:.2f} ({signed(delta_pct(tip_odds, current_odds))} %)"


def direction(tip_odds: float, current_odds: float) -> str:
    """`shortening` when the price came in (the market agrees with the tip), else `drifting`."""
    return "shortening" if current_odds < tip_odds else "drifting"


def no_stats(stats: StatsSummary | None) -> str | None:
    """Why a period has no figures to show (`no statistics`, `no settled tips yet`); None when it has."""
    if stats is None:
        return "no statistics"
    if stats.total <= 0:
        return "no settled tips yet"
    return None


def tip_text(tip: TipLine) -> str:
    """`Full time: Home to win @ 2.20 (now 2.05)`: the price now only when the market's is known."""
    text = f"{tip.market}: {tip.pick} @ {format_odds(tip.odds)}"
    return text + (f" (now {format_odds(tip.current_odds)})" if tip.current_odds is not None else "")


def record_text(record: Record | None) -> str | None:
    """`Our record: 42 settled, ROI +8.1%, CLV +3.2%`; None before we have one."""
    return None if record is None else f"Our record: {record.text()}"


def consensus_title(alert: ConsensusAlert) -> str:
    """`Consensus: 3 top predictors on Home to win (Full time)`."""
    return f"Consensus: {len(alert.members)} top predictors on {alert.pick} ({alert.market})"


def consensus_lines(alert: ConsensusAlert) -> list[str]:
    """The body of a consensus alert, the same in Discord and in the dry-run printout (no Markdown)."""
    lines = []
    for member in alert.members:
        line = f"{member.predictor.nickname} @ {format_odds(member.odds)}"
        if member.record is not None:
            line += f": {member.record.text()}"
        lines.append(line + ("  (new)" if member.joined else ""))
    lines.append(f"Best price now: {format_odds(alert.best_odds)}")
    if alert.crowd:
        lines.append("Sofascore users: " + ", ".join(f"{c.pick} {c.pct:.0f} %" for c in alert.crowd))
    if alert.dissent:
        lines.append("Dissent: " + ", ".join(f"{d.nickname} on {d.pick} @ {format_odds(d.odds)}" for d in alert.dissent))
    return lines


RESULT_MARK = {"won": "\u2705", "lost": "\u274c", "void": "\u2796"}


def digest_title(alert: DigestAlert) -> str:
    won = sum(t.result == "won" for t in alert.settled)
    lost = sum(t.result == "lost" for t in alert.settled)
    return f"Daily digest {alert.day}: {len(alert.settled)} settled ({won} won, {lost} lost)"


def digest_settled_lines(alert: DigestAlert) -> list[str]:
    """`✅ GoalGuru_88: A vs B, Full time: A to win @ 2.20 (closed 2.05)`, one per tip settled that day."""
    lines = []
    for tip in alert.settled:
        closed = f" (closed {format_odds(tip.closing_odds)})" if tip.closing_odds is not None else ""
        lines.append(f"{RESULT_MARK[tip.result]} {tip.nickname}: {tip.match}, {tip.market}: {tip.pick}"
                     f" @ {format_odds(tip.odds)}{closed}")
    return lines or ["no alerted tip was settled that day"]


def digest_predictor_line(row: DigestRow) -> str:
    record = row.record.text() if row.record is not None else "nothing settled yet"
    return f"{row.alerted} alerted; {record}"
