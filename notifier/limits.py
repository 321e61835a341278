"""Discord's limits on embeds and messages: an embed cut to fit, its counted characters, and embeds
packed into messages (at most 10 embeds and 6000 counted characters each).

Pure: no I/O.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Embed = dict[str, Any]

ELLIPSIS = "…"
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


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending in "…" when something was cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + ELLIPSIS if limit > 0 else ""


def whole_lines(lines: Sequence[str], limit: int, what: str) -> str:
    """As many whole lines as fit in `limit` characters, then `… and 12 more <what>` for the rest."""
    kept: list[str] = []
    size = 0
    for index, line in enumerate(lines):
        rest = len(lines) - index
        tail = f"{ELLIPSIS} and {rest} more {what}"
        needed = size + len(line) + 1 + (len(tail) + 1 if rest > 1 else 0)
        if needed > limit:
            return "\n".join([*kept, tail])
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


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
