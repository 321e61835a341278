"""When a deferred tip counts as deleted by its predictor: its place is on a page read, and it is not there.

Sofascore lists a predictor's tips newest first and puts a new tip on top, so the tips that were above
a tip T stay above it and those below stay below, with nothing new ever coming between them; a deletion
only closes a gap. When T was first seen, the tips of its page were kept with it (its neighbours). On a
later page of the same predictor without T, T's place is known when the page shows both its sides:

- above it: one of the tips that were above T; or any tip directly above one that was below T (the
  tips between T and that one were all on T's page, so this one is above T); or the top of page 0;
- below it: one of the tips that were below T; or any tip directly below one that was above T; or the
  end of the list (`hasNextPage: false`).

Then T would be on this page, between those two, and it is not: it was deleted. Anything less proves
nothing (T may be on a page not read, or this page may have come out of order), so T stays deferred and
alerts when due. So do tips whose neighbours appear in another order than they had (the list was not
newest first after all, and no place can be told), and tips judged from an empty page (a bad answer
looks the same). A tip seen again after being judged deleted is deferred again (`processor.dedup`).

The page is one answer, so the rule needs nothing from other pages or other records: it holds whatever
order the processor (or two of them) handles entries in.
"""
from __future__ import annotations


def is_gone(key: str, known_page: list[str], page: list[str], page_no: int, has_next: bool | None) -> bool:
    """Whether the tip `key`, first seen on a page holding `known_page` (in order, itself included), was
    deleted, judged from page `page_no` of the same predictor listing `page` (tip keys, in order)."""
    if not page or key in page:
        return False
    position: dict[str, int] = {}
    for index, other in enumerate(page):
        position.setdefault(other, index)
    mine = known_page.index(key) if key in known_page else len(known_page)
    above = [position[k] for k in known_page[:mine] if k in position]
    below = [position[k] for k in known_page[mine + 1:] if k in position]
    if above + below != sorted(above + below):
        return False  # not in the order they had: the rule's premise does not hold
    nearest_above = above[-1] if above else None
    nearest_below = below[0] if below else None
    top = nearest_above is not None or (nearest_below is not None and nearest_below >= 1) or page_no == 0
    bottom = (nearest_below is not None or (nearest_above is not None and nearest_above < len(page) - 1)
              or has_next is False)
    return top and bottom
