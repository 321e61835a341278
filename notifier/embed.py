"""Alerts as Discord embeds (pure: no I/O), kept inside Discord's documented limits.

`render(alert)` gives one embed per alert, `pack(embeds)` groups consecutive embeds into
messages (at most 10 embeds and 6000 counted characters each), `message(embeds)` is the
JSON body of one webhook call, and `render_text(alert)` is the dry-run printout.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from shared.alerts import HealthAlert, LineMovementAlert, MatchInfo, NewTipAlert, PredictorInfo, StatsSummary

Embed = dict[str, Any]

SITE = "https://www.sofascore.com"
ELLIPSIS = "…"
MINUS = "\u2212"
BLANK = "\u200b"  # Discord rejects empty field names/values; a zero-width space renders as nothing.

# Discord's limits, in characters.
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
EMBEDS_PER_MESSAGE = 10
MESSAGE_TOTAL_MAX = 6000

COLOR_NEW_TIP = 0x2ECC71  # green
COLOR_SHORTENING = 0xE67E22  # orange: the price came in (the market agrees with the tip)
COLOR_DRIFTING = 0x9B59B6  # purple: the price went out
COLOR_HEALTH = {"info": 0x3498DB, "warning": 0xF1C40F, "error": 0xE74C3C}

_MARKDOWN = str.maketrans({c: "\\" + c for c in "\\*_~`|>"})


# -- small helpers ---------------------------------------------------------------------------
def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending in "…" when something was cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + ELLIPSIS if limit > 0 else ""


def escape(text: str) -> str:
    """User-supplied text (team and predictor names) shown literally, not as Markdown."""
    return text.translate(_MARKDOWN)


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


def _iso(at: float | None) -> str:
    moment = datetime.fromtimestamp(at, timezone.utc) if at is not None else datetime.now(timezone.utc)
    return moment.isoformat()


def _kickoff(match: MatchInfo) -> str:
    return f"Kick-off <t:{match.start_ts}:f> (<t:{match.start_ts}:R>)"


# -- statistics fields -----------------------------------------------------------------------
def _stats_fields(predictor: PredictorInfo) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = []
    for label, stats in (("All-time", predictor.all_time), ("Current", predictor.current)):
        fields.extend(_period_fields(label, stats))
    return fields


def _period_fields(label: str, stats: StatsSummary | None) -> list[dict[str, Any]]:
    if stats is None:
        return [{"name": label, "value": "no statistics", "inline": False}]
    if stats.total <= 0:
        return [{"name": label, "value": "no settled tips yet", "inline": False}]
    return [
        {"name": f"{label} yield", "value": f"{signed(stats.yield_pct)} %", "inline": True},
        {"name": f"{label} win rate", "value": f"{stats.win_rate:.1f} % of {stats.total}", "inline": True},
        {"name": f"{label} profit", "value": f"{signed(stats.profit, 2)} u", "inline": True},
    ]


def _stats_line(label: str, stats: StatsSummary | None) -> str:
    if stats is None:
        return f"{label}: no statistics"
    if stats.total <= 0:
        return f"{label}: no settled tips yet"
    return (f"{label}: yield {signed(stats.yield_pct)} %, win rate {stats.win_rate:.1f} %"
            f" of {stats.total} tips, profit {signed(stats.profit, 2)} u")


# -- rendering -------------------------------------------------------------------------------
def _author(predictor: PredictorInfo) -> dict[str, str]:
    name = predictor.nickname.strip() or f"Predictor {predictor.id}"
    return {"name": name, "url": profile_url(predictor)}


def _footer(alert_id: int | None) -> dict[str, str]:
    return {"text": "Sofascore monitor" + (f" \u00b7 alert #{alert_id}" if alert_id is not None else "")}


def _new_tip(alert: NewTipAlert) -> Embed:
    match = alert.match
    lines = [f"**{escape(match_name(match))}**", _kickoff(match), ""]
    for tip in alert.tips:
        lines.append(f"\u2022 {escape(tip.market)}: **{escape(tip.pick)}** @ {format_odds(tip.odds)}")
    if not alert.tips:
        lines.append("(no tips)")
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
    shortening = alert.current_odds < alert.tip_odds
    direction = "shortening" if shortening else "drifting"
    lines = [
        f"**{escape(match_name(match))}**",
        _kickoff(match),
        "",
        f"{escape(alert.tip.market)}: **{escape(alert.tip.pick)}**",
        f"Odds {direction}: {movement_text(alert.tip_odds, alert.current_odds)}",
    ]
    return {
        "title": f"Line movement ({direction}): {match_name(match)}",
        "url": match_url(match),
        "color": COLOR_SHORTENING if shortening else COLOR_DRIFTING,
        "author": _author(alert.predictor),
        "description": "\n".join(lines),
        "fields": _stats_fields(alert.predictor),
    }


def _health(alert: HealthAlert) -> Embed:
    return {
        "title": alert.title.strip() or "Health",
        "description": alert.message.strip() or BLANK,
        "color": COLOR_HEALTH.get(alert.level, COLOR_HEALTH["warning"]),
    }


def render(alert: NewTipAlert | LineMovementAlert | HealthAlert, *, alert_id: int | None = None,
           created_at: float | None = None) -> Embed:
    """One embed for one alert, inside every Discord limit (long text is cut with "…")."""
    if isinstance(alert, NewTipAlert):
        embed = _new_tip(alert)
    elif isinstance(alert, LineMovementAlert):
        embed = _line_movement(alert)
    elif isinstance(alert, HealthAlert):
        embed = _health(alert)
    else:  # pragma: no cover - the Alert union is closed
        raise TypeError(f"unknown alert type {type(alert).__name__}")
    embed["footer"] = _footer(alert_id)
    embed["timestamp"] = _iso(created_at)
    return fit(embed)


def fit(embed: Embed) -> Embed:
    """Cut every part of an embed to its limit, then the whole to 6000 characters."""
    if "title" in embed:
        embed["title"] = clip(embed["title"], TITLE_MAX)
    if "description" in embed:
        embed["description"] = clip(embed["description"], DESCRIPTION_MAX)
    if "author" in embed:
        embed["author"]["name"] = clip(embed["author"]["name"], AUTHOR_MAX) or BLANK
    if "footer" in embed:
        embed["footer"]["text"] = clip(embed["footer"]["text"], FOOTER_MAX)
    fields = embed.get("fields")
    if fields is not None:
        embed["fields"] = [
            {**f, "name": clip(f["name"], FIELD_NAME_MAX) or BLANK, "value": clip(f["value"], FIELD_VALUE_MAX) or BLANK}
            for f in fields[:FIELDS_MAX]
        ]
    excess = embed_chars(embed) - EMBED_TOTAL_MAX
    if excess > 0 and embed.get("description"):
        keep = max(1, len(embed["description"]) - excess)
        embed["description"] = clip(embed["description"], keep)
        excess = embed_chars(embed) - EMBED_TOTAL_MAX
    while excess > 0 and embed.get("fields"):
        embed["fields"].pop()
        excess = embed_chars(embed) - EMBED_TOTAL_MAX
    if excess > 0 and "footer" in embed:
        embed["footer"]["text"] = clip(embed["footer"]["text"], max(1, len(embed["footer"]["text"]) - excess))
        excess = embed_chars(embed) - EMBED_TOTAL_MAX
    if excess > 0 and "title" in embed:
        embed["title"] = clip(embed["title"], max(1, len(embed["title"]) - excess))
    return embed


def embed_chars(embed: Embed) -> int:
    """Characters Discord counts: title, description, field names and values, footer text, author name."""
    total = len(embed.get("title") or "") + len(embed.get("description") or "")
    total += len((embed.get("footer") or {}).get("text") or "")
    total += len((embed.get("author") or {}).get("name") or "")
    for field in embed.get("fields") or []:
        total += len(field.get("name") or "") + len(field.get("value") or "")
    return total


def pack(embeds: Sequence[Embed]) -> list[list[Embed]]:
    """Consecutive embeds in order, at most 10 and 6000 counted characters per message."""
    messages: list[list[Embed]] = []
    current: list[Embed] = []
    size = 0
    for embed in embeds:
        chars = embed_chars(embed)
        if current and (len(current) >= EMBEDS_PER_MESSAGE or size + chars > MESSAGE_TOTAL_MAX):
            messages.append(current)
            current, size = [], 0
        current.append(embed)
        size += chars
    if current:
        messages.append(current)
    return messages


def message(embeds: Sequence[Embed]) -> dict[str, Any]:
    """The body of one webhook call: embeds only, and no mention ever pings anyone."""
    return {"embeds": list(embeds), "allowed_mentions": {"parse": []}}


# -- dry run -----------------------------------------------------------------------------------
def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def render_text(alert: NewTipAlert | LineMovementAlert | HealthAlert, *, alert_id: int | None = None) -> str:
    """The alert as readable lines, for printing when no webhook is configured."""
    head = f"[alert #{alert_id}] " if alert_id is not None else ""
    if isinstance(alert, HealthAlert):
        return f"{head}[HEALTH {alert.level.upper()}] {alert.title}\n{alert.message}"
    match = alert.match
    if isinstance(alert, NewTipAlert):
        lines = [f"{head}[NEW TIP] {match_name(match)}"]
    else:
        direction = "shortening" if alert.current_odds < alert.tip_odds else "drifting"
        lines = [f"{head}[LINE MOVEMENT, {direction}] {match_name(match)}"]
    lines.append(f"Predictor: {alert.predictor.nickname} ({profile_url(alert.predictor)})")
    lines.append(f"Kick-off: {_utc(match.start_ts)}")
    if isinstance(alert, NewTipAlert):
        lines.extend(f"- {tip.market}: {tip.pick} @ {format_odds(tip.odds)}" for tip in alert.tips)
    else:
        lines.append(f"- {alert.tip.market}: {alert.tip.pick}")
        lines.append(f"Odds: {movement_text(alert.tip_odds, alert.current_odds)}")
    lines.append(_stats_line("All-time", alert.predictor.all_time))
    lines.append(_stats_line("Current", alert.predictor.current))
    lines.append(f"Match: {match_url(match)}")
    return "\n".join(lines)
