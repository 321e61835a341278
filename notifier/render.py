"""Alerts as Discord embeds: `render(alert)` gives one embed per alert, cut to Discord's limits.

Pure: no I/O. How to group embeds into messages is `notifier.limits.pack`; the body of a
webhook call is `notifier.discord.message`.
"""
from __future__ import annotations

from typing import Any

from notifier.limits import (
    BLANK,
    DESCRIPTION_MAX,
    EMBED_TOTAL_MAX,
    FIELDS_MAX,
    Embed,
    clip,
    embed_chars,
    fit,
    whole_lines,
)
from notifier.wording import (
    consensus_lines,
    consensus_title,
    digest_predictor_line,
    digest_settled_lines,
    digest_title,
    direction,
    format_odds,
    match_name,
    match_url,
    movement_text,
    no_stats,
    profile_url,
    record_text,
    signed,
)
from shared.alerts import (
    AnyAlert,
    ConsensusAlert,
    DigestAlert,
    HealthAlert,
    LineMovementAlert,
    MatchInfo,
    NewTipAlert,
    PredictorInfo,
    StatsSummary,
)
from shared.timefmt import iso_utc

COLOR_NEW_TIP = 0x2ECC71  # green
COLOR_SHORTENING = 0xE67E22  # orange: the price came in (the market agrees with the tip)
COLOR_DRIFTING = 0x9B59B6  # purple: the price went out
COLOR_CONSENSUS = 0x1ABC9C  # teal
COLOR_DIGEST = 0x95A5A6  # grey
# Room left in a digest's 6000 characters for the predictors' fields, after the settled tips.
DIGEST_SETTLED_MAX = 3000
DIGEST_NAME_MAX = 64  # a predictor's nickname as a field's name
DIGEST_RESERVE = 120  # the footer (`Sofascore monitor · alert #…`) and the `… and N more predictors` field
COLOR_HEALTH = {"info": 0x3498DB, "warning": 0xF1C40F, "error": 0xE74C3C}

_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\*_~`|>"})


def escape(text: str) -> str:
    """User-supplied text (team and predictor names) shown literally, not as Markdown."""
    return text.translate(_MARKDOWN)


def _kickoff(match: MatchInfo) -> str:
    return f"Kick-off <t:{match.start_ts}:f> (<t:{match.start_ts}:R>)"


def _stats_fields(predictor: PredictorInfo) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = []
    for label, stats in (("All-time", predictor.all_time), ("Current", predictor.current)):
        fields.extend(_period_fields(label, stats))
    return fields


def _period_fields(label: str, stats: StatsSummary | None) -> list[dict[str, Any]]:
    missing = no_stats(stats)
    if missing is not None or stats is None:
        return [{"name": label, "value": missing, "inline": False}]
    return [
        {"name": f"{label} yield", "value": f"{signed(stats.yield_pct)} %", "inline": True},
        {"name": f"{label} win rate", "value": f"{stats.win_rate:.1f} % of {stats.total}", "inline": True},
        {"name": f"{label} profit", "value": f"{signed(stats.profit, 2)} u", "inline": True},
    ]


def _author(predictor: PredictorInfo) -> dict[str, str]:
    name = predictor.nickname.strip() or f"Predictor {predictor.id}"
    return {"name": name, "url": profile_url(predictor)}


def _footer(alert_id: int | None) -> dict[str, str]:
    return {"text": "Sofascore monitor" + (f" \u00b7 alert #{alert_id}" if alert_id is not None else "")}


def _new_tip(alert: NewTipAlert) -> Embed:
    match = alert.match
    lines = [f"**{escape(match_name(match))}**", _kickoff(match), ""]
    for tip in alert.tips:
        now = f" (now {format_odds(tip.current_odds)})" if tip.current_odds is not None else ""
        lines.append(f"\u2022 {escape(tip.market)}: **{escape(tip.pick)}** @ {format_odds(tip.odds)}{now}")
    if not alert.tips:
        lines.append("(no tips)")
    record = record_text(alert.record)
    if record is not None:
        lines += ["", record]
    return {
        "title": f"New tip: {match_name(match)}",
        "url": match_url(match),
        "color": COLOR_NEW_TIP,
        "author": _author(alert.predictor),
        "description": "\n".join(lines),
        "fields": _stats_fields(alert.predictor),
    }


def _line_movement(alert: LineMovementAlert) -> Embed:
    match = alert.match
    way = direction(alert.tip_odds, alert.current_odds)
    lines = [
        f"**{escape(match_name(match))}**",
        _kickoff(match),
        "",
        f"{escape(alert.tip.market)}: **{escape(alert.tip.pick)}**",
        f"Odds {way}: {movement_text(alert.tip_odds, alert.current_odds)}",
    ]
    return {
        "title": f"Line movement ({way}): {match_name(match)}",
        "url": match_url(match),
        "color": COLOR_SHORTENING if way == "shortening" else COLOR_DRIFTING,
        "author": _author(alert.predictor),
        "description": "\n".join(lines),
        "fields": _stats_fields(alert.predictor),
    }


def _consensus(alert: ConsensusAlert) -> Embed:
    match = alert.match
    lines = [f"**{escape(match_name(match))}**", _kickoff(match), ""]
    lines += [escape(line) for line in consensus_lines(alert)]
    return {
        "title": f"{consensus_title(alert)}: {match_name(match)}",
        "url": match_url(match),
        "color": COLOR_CONSENSUS,
        "description": "\n".join(lines),
    }


def _digest(alert: DigestAlert) -> Embed:
    """Yesterday's settled tips in the description, whole lines only; one field per predictor, best first, as many
    as Discord's 25 fields and 6000 characters take, and a count of the others."""
    settled = [escape(line) for line in digest_settled_lines(alert)]
    embed: Embed = {
        "title": digest_title(alert),
        "color": COLOR_DIGEST,
        "description": whole_lines(settled, min(DIGEST_SETTLED_MAX, DESCRIPTION_MAX), "settled tips")
        + f"\n\nOur record of each predictor, last {alert.window_days} days:",
        "fields": [],
    }
    rows = alert.predictors
    # Room for the footer and for the count of predictors left out, whatever the nicknames' lengths.
    room = EMBED_TOTAL_MAX - embed_chars(embed) - DIGEST_RESERVE
    for row in rows:
        field = {"name": clip(escape(row.nickname), DIGEST_NAME_MAX), "value": digest_predictor_line(row),
                 "inline": False}
        size = len(field["name"]) + len(field["value"])
        if len(embed["fields"]) == FIELDS_MAX - 1 or size > room:
            break
        embed["fields"].append(field)
        room -= size
    if len(embed["fields"]) < len(rows):
        embed["fields"].append({"name": f"\u2026 and {len(rows) - len(embed['fields'])} more predictors",
                                "value": BLANK, "inline": False})
    return embed


def _health(alert: HealthAlert) -> Embed:
    return {
        "title": alert.title.strip() or "Health",
        "description": alert.message.strip() or BLANK,
        "color": COLOR_HEALTH.get(alert.level, COLOR_HEALTH["warning"]),
    }


def render(alert: AnyAlert, *, alert_id: int | None = None,
           created_at: float | None = None) -> Embed:
    """One embed for one alert, inside every Discord limit (long text is cut with "…")."""
    if isinstance(alert, NewTipAlert):
        embed = _new_tip(alert)
    elif isinstance(alert, LineMovementAlert):
        embed = _line_movement(alert)
    elif isinstance(alert, ConsensusAlert):
        embed = _consensus(alert)
    elif isinstance(alert, DigestAlert):
        embed = _digest(alert)
    elif isinstance(alert, HealthAlert):
        embed = _health(alert)
    else:  # pragma: no cover - the Alert union is closed
        raise TypeError(f"unknown alert type {type(alert).__name__}")
    embed["footer"] = _footer(alert_id)
    embed["timestamp"] = iso_utc(created_at)
    return fit(embed)
