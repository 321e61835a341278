"""Several fetchers, one set of work: which fetcher polls which predictor and which match (a rule, no I/O).

Rendezvous hashing over the live fetchers' names (`fetcher.peers`): each item goes to the fetcher whose
hash with it is highest. Every fetcher computes the same answer from the same list, so each item is polled
by exactly one of them; when a fetcher joins or leaves, only its own share moves, to the others evenly.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def _weight(item: str, fetcher: str) -> bytes:
    return hashlib.blake2b(f"{fetcher}\x00{item}".encode(), digest_size=8).digest()


def owner(item: str, fetchers: Sequence[str]) -> str:
    """The fetcher that polls `item` (a predictor id, or a match's id as text)."""
    return max(fetchers, key=lambda fetcher: _weight(item, fetcher))


def mine(items: Iterable[T], me: str, fetchers: Sequence[str], key: Callable[[T], str]) -> list[T]:
    """The items of `me`'s share; all of them when `me` is alone (or not among `fetchers`: a one-off run)."""
    if len(fetchers) < 2 or me not in fetchers:
        return list(items)
    return [item for item in items if owner(key(item), fetchers) == me]
