"""Local fake of the Sofascore JSON API (api.sofascore.com/api/v1).

Why: tests must never touch the internet, yet the fetcher has to be exercised
against realistic payloads and realistic failures (Cloudflare challenges, 429s,
5xx, truncated JSON, slow answers). Data comes only from tests/fixtures/sofascore/.

Fixture timestamps are written against ``REF_NOW``; every ``startDateTimestamp``
(and an event's ``startTimestamp``) is shifted by ``int(clock()) - REF_NOW`` when served, so "+3 h" in a fixture
is "+3 h" from the injected clock. State is stored at REF_NOW scale: author new
data with ``ref_ts(offset)``.

Run standalone: ``python -m tests.fakes.sofascore --port 8765``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Final, NamedTuple
from urllib.parse import parse_qs, urlsplit

from tests.fakes._http import HTML_TYPE, BaseFake, Reply, serve_until_signal

REF_NOW: Final[int] = 1795348800  # 2026-11-22T12:00:00Z, the fixtures' "now"
FIXTURES_DIR: Final[Path] = Path(__file__).resolve().parent.parent / "fixtures" / "sofascore"
API_PREFIX: Final[str] = "/api/v1"
MODES: Final[frozenset[str]] = frozenset(
    {"challenge", "ratelimit", "error", "malformed", "html200", "slow", "notfound"})

_RANKING_RE = re.compile(r"/api/v1/user-account/vote-ranking/?")
_PREDICTIONS_RE = re.compile(r"/api/v1/user-account/([^/]+)/predictions/?")
_ODDS_RE = re.compile(r"/api/v1/event/(\d+)/odds/1/all/?")
_EVENT_RE = re.compile(r"/api/v1/event/(\d+)/?")
_VOTES_RE = re.compile(r"/api/v1/event/(\d+)/votes/?")
PAGE_SIZE: Final[int] = 20
_SHIFTED: Final[frozenset[str]] = frozenset({"startDateTimestamp", "startTimestamp"})
_USER_FILE_RE = re.compile(r"user-(?P<uid>[^-]+)-page(?P<page>\d+)\.json")
_ODDS_FILE_RE = re.compile(r"event-(?P<eid>\d+)-odds-all\.json")
_VOTES_FILE_RE = re.compile(r"event-(?P<eid>\d+)-votes\.json")

CHALLENGE_HTML: Final[str] = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow"></head><body>
<div class="main-wrapper" role="main"><div class="main-content">
<h1 class="zone-name-title h1">www.sofascore.com</h1>
<h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>
<div id="cf-chl-widget-fake01" class="cf-chl-widget"></div>
<noscript><div class="h2">Enable JavaScript and cookies to continue</div></noscript>
</div></div>
<script>(function(){window._cf_chl_opt={cvId:'3',cZone:"www.sofascore.com",cType:'managed',
cRay:'8f00fa4e0badc0de',cH:'fake'};var a=document.createElement('script');
a.src='/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1?ray=8f00fa4e0badc0de';
document.getElementsByTagName('head')[0].appendChild(a);}());</script>
</body></html>
"""


def ref_ts(offset_seconds: float = 0) -> int:
    """A timestamp at fixture scale: REF_NOW + offset (shifted to real time on serve)."""
    return REF_NOW + int(offset_seconds)


def load_fixture(name: str, fixtures_dir: Path = FIXTURES_DIR) -> Any:
    """Parse one fixture file (unshifted, REF_NOW scale)."""
    return json.loads((fixtures_dir / name).read_text(encoding="utf-8"))


def shift_timestamps(obj: Any, delta: int) -> Any:
    """Deep-copy ``obj`` adding ``delta`` to every int ``startDateTimestamp`` / ``startTimestamp``."""
    if isinstance(obj, dict):
        return {k: (v + delta if k in _SHIFTED and isinstance(v, int)
                    and not isinstance(v, bool) else shift_timestamps(v, delta))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [shift_timestamps(v, delta) for v in obj]
    return obj


def _error_body(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _normalize_prefix(prefix: str | None) -> str | None:
    """Accept both '/api/v1/event/' and the shorter '/event/'."""
    if prefix is None or prefix.startswith("/api/"):
        return prefix
    return API_PREFIX + ("" if prefix.startswith("/") else "/") + prefix


class RecordedRequest(NamedTuple):
    """One request as seen by the fake; ``time`` is wall-clock time.time(), ``at`` the fake's clock."""

    method: str
    path: str  # path with query string
    headers: dict[str, str]
    time: float
    at: float = 0.0


@dataclass
class _ModeRule:
    mode: str
    prefix: str | None
    remaining: int | None
    opts: dict[str, Any] = field(default_factory=dict)

    def matches(self, target: str) -> bool:
        return self.prefix is None or target.startswith(self.prefix)


class FakeSofascore(BaseFake):
    """Threaded local Sofascore API with mutable, thread-safe state.

    Attributes tests may read/mutate (hold ``.lock`` for multi-step edits):
    ``ranking`` (list), ``predictions[user_id][page]`` (list),
    ``has_next[user_id][page]`` (bool, optional), ``odds[event_id]`` (payload dict),
    ``votes[event_id]`` (the crowd's votes of ``GET /event/{id}/votes``; a 404 without),
    ``feeds[user_id]`` (all of a user's tips, newest first, served ``page_size`` a page
    with ``hasNextPage``, as Sofascore does; takes precedence over ``predictions``),
    ``events[event_id]`` (the ``event`` object of ``GET /event/{id}``; without one, it is
    built from a tip on that event), ``requests`` (list of RecordedRequest), ``latency`` (seconds
    added before every answer, as the real API's round trip; 0 by default).
    A user is "known" if it has prediction pages, a feed, or appears in ``ranking``;
    known users without page N get ``{"predictions": []}``, unknown ones a 404.
    """

    def __init__(self, clock: Callable[[], float] = time.time, *, host: str = "127.0.0.1",
                 port: int = 0, fixtures_dir: Path = FIXTURES_DIR) -> None:
        super().__init__(host, port)
        self.clock = clock
        self.fixtures_dir = fixtures_dir
        self.lock = threading.RLock()
        self.ranking: list[dict[str, Any]] = []
        self.predictions: dict[str, dict[int, list[dict[str, Any]]]] = {}
        self.has_next: dict[str, dict[int, bool]] = {}
        self.odds: dict[int, dict[str, Any]] = {}
        self.votes: dict[int, dict[str, Any]] = {}
        self.feeds: dict[str, list[dict[str, Any]]] = {}
        self.page_size = PAGE_SIZE
        self.events: dict[int, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.latency = 0.0
        self._modes: list[_ModeRule] = []
        self.reset()

    # -- state --------------------------------------------------------------
    def reset(self) -> None:
        """Reload fixtures and forget modes and recorded requests."""
        with self.lock:
            self.ranking = load_fixture("vote-ranking.json", self.fixtures_dir)["ranking"]
            self.predictions, self.has_next, self.odds, self.votes = {}, {}, {}, {}
            self.feeds, self.events = {}, {}
            for path in sorted(self.fixtures_dir.glob("*.json")):
                self._load_file(path)
            self.requests = []
            self._modes = []

    def _load_file(self, path: Path) -> None:
        if m := _USER_FILE_RE.fullmatch(path.name):
            data = load_fixture(path.name, self.fixtures_dir)
            uid, page = m["uid"], int(m["page"])
            self.predictions.setdefault(uid, {})[page] = data.get("predictions", [])
            if "hasNextPage" in data:
                self.has_next.setdefault(uid, {})[page] = bool(data["hasNextPage"])
        elif m := _ODDS_FILE_RE.fullmatch(path.name):
            self.odds[int(m["eid"])] = load_fixture(path.name, self.fixtures_dir)
        elif m := _VOTES_FILE_RE.fullmatch(path.name):
            self.votes[int(m["eid"])] = load_fixture(path.name, self.fixtures_dir)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}{API_PREFIX}"

    def time_shift(self) -> int:
        """Seconds added to fixture timestamps right now."""
        return int(self.clock()) - REF_NOW

    ref_ts = staticmethod(ref_ts)

    def add_prediction(self, user_id: str, prediction: dict[str, Any], page: int = 0) -> None:
        """Insert a tip at the front of a page (Sofascore lists newest first)."""
        with self.lock:
            self.predictions.setdefault(user_id, {}).setdefault(page, []).insert(0, prediction)

    def set_feed(self, user_id: str, tips: list[dict[str, Any]]) -> None:
        """All of a user's tips, newest first; served ``page_size`` a page with ``hasNextPage``."""
        with self.lock:
            self.feeds[user_id] = list(tips)

    def post(self, user_id: str, *tips: dict[str, Any]) -> None:
        """The user posts tips (the last one given is the newest): they go to the top of the feed."""
        with self.lock:
            feed = self.feeds.setdefault(user_id, [])
            for tip in tips:
                feed.insert(0, tip)

    def delete_tip(self, user_id: str, tip_id: str) -> None:
        """The user deletes a tip: the ones below move up."""
        with self.lock:
            self.feeds[user_id] = [t for t in self.feeds[user_id] if t.get("id") != tip_id]

    def _all_tips(self) -> list[dict[str, Any]]:
        return ([p for pages in self.predictions.values() for tips in pages.values() for p in tips]
                + [p for feed in self.feeds.values() for p in feed])

    def update_event(self, event_id: int, **fields_: Any) -> int:
        """Apply fields (e.g. status=..., correct=1) to every tip on an event, and to its
        ``GET /event/{id}`` answer (``startDateTimestamp`` becomes its ``startTimestamp``); returns count."""
        with self.lock:
            hits = [p for p in self._all_tips() if p.get("eventId") == event_id]
            for p in hits:
                p.update(copy.deepcopy(fields_))
            if event_id in self.events:
                event = self.events[event_id]
                for name, value in fields_.items():
                    event["startTimestamp" if name == "startDateTimestamp" else name] = copy.deepcopy(value)
            return len(hits)

    def event_payload(self, event_id: int) -> dict[str, Any] | None:
        """The ``event`` object of ``GET /event/{id}`` (REF_NOW scale), or None when no tip names the event."""
        with self.lock:
            if event_id in self.events:
                return copy.deepcopy(self.events[event_id])
            tip = next((p for p in self._all_tips() if p.get("eventId") == event_id), None)
            if tip is None:
                return None
            return {"id": event_id, "slug": tip.get("eventSlug"), "customId": tip.get("customId"),
                    "status": copy.deepcopy(tip.get("status")), "startTimestamp": tip.get("startDateTimestamp"),
                    "homeTeam": {"name": tip.get("homeTeamName")}, "awayTeam": {"name": tip.get("awayTeamName")}}

    def add_event_odds(self, event_id: int, payload: dict[str, Any]) -> None:
        """Register (or replace) the /odds/1/all payload of an event."""
        with self.lock:
            self.odds[int(event_id)] = payload

    def set_price(self, event_id: int, market_id: int, choice_name: str, fractional: str,
                  choice_group: str | None = None) -> None:
        """Move a price: sets ``fractionalValue`` (and ``change`` direction) of one choice."""
        with self.lock:
            choice = self._find_choice(int(event_id), market_id, choice_name, choice_group)
            old = _frac(choice.get("fractionalValue"))
            choice["fractionalValue"] = fractional
            new = _frac(fractional)
            if old is not None and new is not None:
                choice["change"] = (new > old) - (new < old)

    def _find_choice(self, event_id: int, market_id: int, choice_name: str,
                     choice_group: str | None) -> dict[str, Any]:
        for market in self.odds[event_id].get("markets", []):
            if market.get("marketId") != market_id:
                continue
            if choice_group is not None and market.get("choiceGroup") != choice_group:
                continue
            for choice in market.get("choices", []):
                if choice.get("name") == choice_name:
                    return choice
        raise KeyError(f"event {event_id}: no market {market_id} choice {choice_name!r}")

    # -- failure modes --------------------------------------------------------
    def set_mode(self, mode: str, path_prefix: str | None = None, count: int | None = None,
                 **opts: Any) -> None:
        """Make matching requests fail in ``mode`` (latest rule wins; ``count`` = next N only).

        ``path_prefix`` matches the path+query, with or without the ``/api/v1`` prefix.
        Options: ratelimit ``retry_after`` (default 2), slow ``delay`` (default 5 s).
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(MODES)}")
        with self.lock:
            self._modes.append(_ModeRule(mode, _normalize_prefix(path_prefix), count, opts))

    def clear_modes(self) -> None:
        with self.lock:
            self._modes = []

    def _take_mode(self, target: str) -> _ModeRule | None:
        for rule in reversed(self._modes):
            if rule.matches(target):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._modes.remove(rule)
                return rule
        return None

    # -- requests ------------------------------------------------------------
    def count(self, path_prefix: str = "") -> int:
        """How many requests hit paths starting with ``path_prefix`` ('/event/' ok)."""
        prefix = _normalize_prefix(path_prefix) or ""
        with self.lock:
            return sum(1 for r in self.requests if r.path.startswith(prefix))

    def hits(self, path: str) -> int:
        """How many requests asked for exactly this path and query ('/event/1' ok; '/event/1/odds/1/all' apart)."""
        target = _normalize_prefix(path)
        with self.lock:
            return sum(1 for r in self.requests if r.path == target)

    def clear_requests(self) -> None:
        with self.lock:
            self.requests = []

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        """Record, apply any failure mode, else route."""
        with self.lock:
            self.requests.append(RecordedRequest(method, target, headers, time.time(), self.clock()))
            rule = self._take_mode(target)
            if rule is not None and rule.mode != "slow":
                reply = self._mode_reply(rule, method, target)
            else:
                reply = self._route(method, target)
            latency = self.latency
        if rule is not None and rule.mode == "slow":
            reply.delay = float(rule.opts.get("delay", 5))
        reply.delay += latency  # waited outside the lock: concurrent requests wait side by side
        return reply

    def _mode_reply(self, rule: _ModeRule, method: str, target: str) -> Reply:
        if rule.mode == "challenge":
            return _challenge_reply(403, mitigated=True)
        if rule.mode == "html200":
            return _challenge_reply(200, mitigated=False)
        if rule.mode == "ratelimit":
            retry = rule.opts.get("retry_after", 2)
            return Reply.json(429, _error_body(429, "Too Many Requests"), {"Retry-After": str(retry)})
        if rule.mode == "error":
            return Reply.json(500, _error_body(500, "Internal Server Error"))
        if rule.mode == "notfound":
            return Reply.json(404, _error_body(404, "Not Found"))
        normal = self._route(method, target)  # "malformed": cut a real answer in half
        normal.status, normal.body = 200, normal.body[: max(1, len(normal.body) // 2)]
        return normal

    def _route(self, method: str, target: str) -> Reply:
        if method != "GET":
            return Reply.json(405, _error_body(405, "Method Not Allowed"))
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        if _RANKING_RE.fullmatch(path):
            return self._ok({"ranking": self.ranking})
        if m := _PREDICTIONS_RE.fullmatch(path):
            return self._predictions_reply(m[1], query)
        if m := _ODDS_RE.fullmatch(path):
            payload = self.odds.get(int(m[1]))
            return self._ok(payload) if payload is not None else _not_found()
        if m := _VOTES_RE.fullmatch(path):
            payload = self.votes.get(int(m[1]))
            return self._ok(payload) if payload is not None else _not_found()
        if m := _EVENT_RE.fullmatch(path):
            event = self.event_payload(int(m[1]))
            return self._ok({"event": event}) if event is not None else _not_found()
        return _not_found()

    def _predictions_reply(self, user_id: str, query: dict[str, list[str]]) -> Reply:
        try:
            page = int(query.get("page", ["0"])[0])
        except ValueError:
            return Reply.json(400, _error_body(400, "Bad Request"))
        if user_id in self.feeds:
            feed, size = self.feeds[user_id], self.page_size
            return self._ok({"predictions": feed[page * size:(page + 1) * size],
                             "hasNextPage": (page + 1) * size < len(feed)})
        if user_id not in self.predictions and not any(
                u.get("id") == user_id for u in self.ranking):
            return _not_found()
        payload: dict[str, Any] = {"predictions": self.predictions.get(user_id, {}).get(page, [])}
        if page in self.has_next.get(user_id, {}):
            payload["hasNextPage"] = self.has_next[user_id][page]
        return self._ok(payload)

    def _ok(self, payload: Any) -> Reply:
        return Reply.json(200, shift_timestamps(payload, self.time_shift()))


def _frac(value: Any) -> float | None:
    """'13/8' -> 1.625 (None when not a fraction)."""
    try:
        num, den = str(value).split("/")
        return int(num) / int(den)
    except (ValueError, ZeroDivisionError):
        return None


def _not_found() -> Reply:
    return Reply.json(404, _error_body(404, "Not Found"))


def _challenge_reply(status: int, mitigated: bool) -> Reply:
    """Cloudflare-like interstitial; the 200 variant lacks ``cf-mitigated`` (proxy-stripped)."""
    headers = {"Server": "cloudflare", "CF-RAY": "8f00fa4e0badc0de-AMS",
               "Cache-Control": "private, max-age=0, no-store, no-cache, must-revalidate"}
    if mitigated:
        headers["cf-mitigated"] = "challenge"
    return Reply(status, CHALLENGE_HTML.encode("utf-8"), HTML_TYPE, headers)


def main(argv: list[str] | None = None) -> int:
    """Serve the fixtures until SIGTERM/SIGINT; prints the base_url first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    fake = FakeSofascore(host=args.host, port=args.port).start()
    return serve_until_signal(fake, fake.base_url)


if __name__ == "__main__":
    raise SystemExit(main())
