"""How deep to read a predictor's tips (pure rules; `fetcher.cycle` does the requests).

Sofascore lists a predictor's tips newest first, a page at a time. A poll reads page 0, then the next
page as long as the page just read brought something new, i.e. an upcoming tip (`shared.tips.is_upcoming`)
the fetcher has not written to the stream before (`fetcher.seen`) nor read earlier in the same poll. It
stops at a page with nothing new, an empty page, a page without `hasNextPage: true`, or after
`PREDICTION_MAX_PAGES` pages. A first poll knows nothing, so it reads until a page holds no upcoming tip:
as deep as needed to see every tip whose match is still ahead. Tips on finished matches never count as
new, so a quiet predictor costs one request per poll.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from shared.models import PredictionsPage
from shared.tips import is_upcoming, tip_key

Verdict = Literal["next", "done", "bound"]


@dataclass(frozen=True)
class PageView:
    """What the fetcher needs of one page of tips."""

    keys: list[str]  # every tip on the page, in page order
    upcoming: dict[str, float]  # tip key -> kick-off, of the tips whose match is still ahead
    has_next: bool | None
    events: frozenset[int] = frozenset()  # the matches of the page's tips

    @classmethod
    def of(cls, predictor_id: str, text: str, now: float, grace_minutes: float) -> "PageView | None":
        """None when the page is not a page of tips at all (the processor dead-letters it)."""
        try:
            page = PredictionsPage.model_validate_json(text)
        except (ValidationError, ValueError):
            return None
        keys = [tip_key(predictor_id, p) for p in page.predictions]
        upcoming = {key: float(p.start_date_timestamp) for key, p in zip(keys, page.predictions)
                    if is_upcoming(p, now, grace_minutes)}
        return cls(keys, upcoming, page.has_next_page, frozenset(p.event_id for p in page.predictions))


def new_tips(view: PageView, known: set[str] | dict[str, float]) -> list[str]:
    """The page's upcoming tips not known yet."""
    return [key for key in view.upcoming if key not in known]


def verdict(view: PageView | None, page: int, known: set[str] | dict[str, float] | None, max_pages: int) -> Verdict:
    """After reading `page` (0-based): read the next one, stop, or stop at the safety bound.

    `known` None: the fetcher cannot tell what is new (Redis away and nothing remembered), so it reads
    no deeper than page 0; the page itself still reaches the stream.
    """
    if view is None or known is None or not view.keys or view.has_next is not True:
        return "done"
    if not new_tips(view, known):
        return "done"
    return "next" if page + 1 < max_pages else "bound"


def dig_verdict(view: PageView | None, page: int, event_id: int, max_pages: int) -> Verdict:
    """Looking for the predictor's tip on a finished match, to settle it (`shared.unsettled`): read the next
    page until one holds a tip on that match, the pages end, or PREDICTION_MAX_PAGES is reached."""
    if view is None or not view.keys or event_id in view.events or view.has_next is not True:
        return "done"
    return "next" if page + 1 < max_pages else "bound"
