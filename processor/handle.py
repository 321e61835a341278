"""Turn one fetched record into database changes and alerts: parse it, apply the rules, store, say what to do next.

Orchestration only: the rules are in `processor.alertable`, `processor.deleted` and `processor.movement`,
the SQL in `processor.dedup` (tips), `processor.oddshistory`, `processor.predictors` and `shared.outbox`.
No Redis here: the Outcome tells `processor.main` what to do after the commit.
"""
from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TypeVar

from pydantic import ValidationError

from processor import consensusmembers, dedup, oddshistory, predictors
from processor.alertable import Judge, group_by_match
from processor.consensus import Tip, consensus
from processor.deleted import is_gone
from processor.movement import (
    Price,
    all_prices,
    current_price,
    decide,
    delta,
    unreadable_prices,
)
from shared import outbox, settlements
from shared.alerts import (
    ConsensusAlert,
    ConsensusMember,
    CrowdShare,
    Dissent,
    HealthAlert,
    LineMovementAlert,
    MatchInfo,
    NewTipAlert,
    Record,
    TipLine,
)
from shared.logs import Once, first_line
from shared.markets import crowd_shares, market_name, pick_label
from shared.models import (
    INT64_MAX,
    EventDetails,
    EventOdds,
    EventVotes,
    FetchRecord,
    Prediction,
    PredictionsPage,
    Ranking,
    validate_payload,
)
from shared.prices import decimal_of
from shared.scorecard import settle
from shared.settings import Settings
from shared.storage import Database, Tx
from shared.tips import is_upcoming, tip_key
from shared.watch import kicked_off
from shared.webhooks import HEALTH_WEBHOOK, MAIN_WEBHOOK

log = logging.getLogger(__name__)

_POSITION = re.compile(r"\[\d+\]")
K = TypeVar("K")
V = TypeVar("V")


class BadRecord(ValueError):
    """A record that can never be processed: it goes to the dead-letter stream."""


@dataclass
class Outcome:
    """What a record led to, for the Redis side effects done after the commit."""

    alert_ids: list[int] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)  # the webhook of each alert (same order)
    watch: dict[int, int] = field(default_factory=dict)  # event id -> kick-off
    # Deferred tips for the fetcher to refresh when due (`shared.deferred` member -> kick-off), and those done.
    waiting: dict[str, float] = field(default_factory=dict)
    done_waiting: set[str] = field(default_factory=set)
    # Matches with a consensus to announce (-> kick-off) for the fetcher to ask the crowd's votes of, and those
    # whose votes came (`shared.votes`).
    votes_wanted: dict[int, float] = field(default_factory=dict)
    votes_done: set[int] = field(default_factory=set)
    summaries: list[str] = field(default_factory=list)  # one line per alert (same order), for logs, jobs, replay

    @classmethod
    def merged(cls, outcomes: Iterable["Outcome"]) -> "Outcome":
        """The outcomes of records in the order they were handled, as one: applying it to Redis does
        what applying each in turn would (a later record's word on an event or a tip wins)."""
        merged = cls()
        for outcome in outcomes:
            merged.alert_ids += outcome.alert_ids
            merged.webhooks += outcome.webhooks
            merged.summaries += outcome.summaries
            merged.watch.update(outcome.watch)
            _later_wins(merged.votes_wanted, merged.votes_done, outcome.votes_wanted, outcome.votes_done)
            _later_wins(merged.waiting, merged.done_waiting, outcome.waiting, outcome.done_waiting)
        return merged

    def alerted(self, alert_id: int, webhook: str, summary: str) -> None:
        """An alert the record led to: its id, its webhook and its summary line."""
        self.alert_ids.append(alert_id)
        self.webhooks.append(webhook)
        self.summaries.append(summary)

    def track(self, tips: Iterable[dedup.Stored], now: float, grace_minutes: float) -> None:
        for tip in tips:
            if tip.waiting(now, grace_minutes):
                self.waiting[tip.member] = tip.start_ts
                self.done_waiting.discard(tip.member)
            else:
                self.done_waiting.add(tip.member)
                self.waiting.pop(tip.member, None)


def _later_wins(added: dict[K, V], removed: set[K], more_added: dict[K, V], more_removed: set[K]) -> None:
    """A later outcome's removals, then its additions, over what the earlier ones said."""
    for key in more_removed:
        added.pop(key, None)
        removed.add(key)
    for key, value in more_added.items():
        removed.discard(key)
        added[key] = value


@dataclass(frozen=True)
class Rules:
    lookahead_hours: float
    grace_minutes: float
    threshold: float
    min_settled: int = Settings.model_fields["scorecard_min_settled"].default
    consensus_min: int = Settings.model_fields["consensus_min_predictors"].default  # 0: no consensus alerts

    @classmethod
    def of(cls, settings: Settings) -> "Rules":
        return cls(settings.time_lookahead_hours, settings.match_grace_period_minutes, settings.line_movement_threshold,
                   settings.scorecard_min_settled, settings.consensus_min_predictors)


def parse(record: FetchRecord) -> Ranking | PredictionsPage | EventOdds | EventDetails | EventVotes | dict:
    try:
        if record.kind == "leaderboard":
            return validate_payload(Ranking, record.payload)
        if record.kind == "predictions":
            return validate_payload(PredictionsPage, record.payload)
        if record.kind == "odds":
            return validate_payload(EventOdds, record.payload)
        if record.kind == "event":
            return validate_payload(EventDetails, record.payload)
        if record.kind == "votes":
            return validate_payload(EventVotes, record.payload)
        body = json.loads(record.payload)
    except (ValidationError, ValueError) as error:
        raise BadRecord(_first_line(error)) from None
    if not isinstance(body, dict):
        raise BadRecord("health payload is not an object")
    return body


def _first_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{error.error_count()} validation error(s); first at {where or 'payload'}: {first['msg']}"
    return first_line(error)


class Handler:
    """`clock`, when given (live processing), also judges tips at the time they are processed (see `Judge`);
    replays pass None and judge by fetch time only."""

    def __init__(self, db: Database, rules: Rules, clock: Callable[[], float] | None = None) -> None:
        self.db = db
        self.rules = rules
        self.judge = Judge(rules.lookahead_hours, rules.grace_minutes, clock)
        # A bad item or price stays on its page for many polls: it is logged the first time only.
        self.said = Once()

    def handle(self, record: FetchRecord) -> Outcome:
        """Apply one record in one transaction; raises BadRecord for data that can never be processed."""
        parsed = parse(record)
        skipped = parsed.all_skipped if isinstance(parsed, EventOdds) else getattr(parsed, "skipped", [])
        for why in skipped:
            # Known by its id and fault, not its place: newer tips push it down the page from poll to poll.
            if self.said.first(("skipped", record.kind, record.subject, _POSITION.sub("[]", why))):
                log.warning("%s: malformed item left out: %s", _whose(record), why)
        outcome = Outcome()
        with self.db.tx() as tx:
            if isinstance(parsed, Ranking):
                for entry in parsed.ranking:
                    predictors.upsert(tx, entry, record.fetched_at)
            elif isinstance(parsed, PredictionsPage):
                self._predictions(tx, record.subject, parsed, record.page, record.fetched_at, outcome)
            elif isinstance(parsed, EventOdds):
                self._odds(tx, _event_id(record), parsed, record.fetched_at, outcome)
            elif isinstance(parsed, EventDetails):
                self._event(tx, _event_id(record), parsed, record.fetched_at, outcome)
            elif isinstance(parsed, EventVotes):
                self._votes(tx, _event_id(record), parsed, record.fetched_at, outcome)
            else:
                self._health(tx, record, parsed, outcome)
        return outcome

    # -- new tips -------------------------------------------------------------------------------
    def _predictions(self, tx: Tx, predictor_id: str, page: PredictionsPage, page_no: int, now: float,
                     outcome: Outcome) -> None:
        """Every upcoming tip on the page is stored (deferred) or brought up to date; the alertable ones are
        claimed; deferred tips the page shows deleted are forgotten."""
        grace = self.rules.grace_minutes
        keys = [tip_key(predictor_id, p) for p in page.predictions]
        dedup.observe(tx, predictor_id, [(key, p, is_upcoming(p, now, grace)) for key, p in zip(keys, page.predictions)],
                      keys, now)
        # An alerted tip whose match is over is settled from its own verdict, once (shared/settlements.py).
        results = [(key, result) for key, p in zip(keys, page.predictions)
                   if (result := settle(p.status.type, p.correct)) is not None]
        if results:
            settlements.record_results(tx, results, now)
        alertable = {tip_key(predictor_id, p): p for p in self.judge.alertable(page.predictions, now)}
        just_claimed = dedup.claim_many(tx, list(alertable))
        self._announce(tx, predictor_id, [p for key, p in alertable.items() if key in just_claimed], now, outcome)
        # Tips alerted before this page never wait: only the others can change the fetcher's set.
        outcome.track([t for t in dedup.stored(tx, keys) if t.state != dedup.ALERTED or t.tip_key in just_claimed],
                      now, grace)
        for tip in dedup.deferred_of(tx, predictor_id, now, grace):
            if is_gone(tip.tip_key, tip.page_keys, keys, page_no, page.has_next_page):
                # Only if this page was fetched after the tip's last sighting (a late re-read tells nothing).
                if dedup.mark_deleted(tx, tip.tip_key, now):
                    log.info("tip %s (event %d) is gone from its predictor's page %d: deleted before it alerted,"
                             " it will not alert", tip.tip_key[:80], tip.event_id, page_no)
                    outcome.done_waiting.add(tip.member)
                    outcome.waiting.pop(tip.member, None)

    # -- deferred tips, their match refreshed -----------------------------------------------------
    def _event(self, tx: Tx, event_id: int, details: EventDetails, now: float, outcome: Outcome) -> None:
        """The match of deferred tips, as it stands: they alert if now alertable, whichever page they are on.

        A postponed or canceled match never alerts (and its tips stop waiting); a moved kick-off is
        stored, and the tips wait for it. A tip observed later than this refresh is left to that observation.
        """
        event = details.event
        if event.id != event_id:
            raise BadRecord(f"event record for {event_id} holds event {event.id}")
        if settle(event.status.type, None) == "void":
            settlements.void_event(tx, event_id, now)  # a canceled match voids every tip alerted on it
        fresh: list[tuple[dedup.Stored, Prediction]] = []
        for tip in dedup.on_event(tx, event_id):
            if tip.state == dedup.DEFERRED and dedup.refresh(tx, tip.tip_key, event.start_timestamp,
                                                             event.status.type, now):
                prediction = tip.prediction()
                if prediction is not None:
                    update = {"start_date_timestamp": event.start_timestamp, "status": event.status}
                    fresh.append((tip, prediction.model_copy(update=update)))
        alertable = {id(p) for p in self.judge.alertable([p for _, p in fresh], now)}
        claimed: dict[str, list[Prediction]] = defaultdict(list)
        for tip, prediction in fresh:
            if id(prediction) in alertable and dedup.claim(tx, tip.tip_key):
                claimed[tip.predictor_id].append(prediction)
        for predictor_id, tips in claimed.items():
            self._announce(tx, predictor_id, tips, now, outcome)
        outcome.track(dedup.on_event(tx, event_id), now, self.rules.grace_minutes)

    def _announce(self, tx: Tx, predictor_id: str, claimed: list[Prediction], now: float, outcome: Outcome) -> None:
        """One new-tip alert per match for the tips of one predictor just claimed."""
        if not claimed:
            return
        who = predictors.info(tx, predictor_id)
        record = self._record(tx, predictor_id)
        groups = group_by_match(claimed)
        alerts = {event_id: NewTipAlert(predictor=who, match=MatchInfo.of(tips[0]), record=record,
                                        tips=_priced_now(tx, event_id, tips))
                  for event_id, tips in groups.items()}
        alert_ids = outbox.insert_per_event(tx, alerts, webhook=MAIN_WEBHOOK, created_at=now,
                                            predictor_id=predictor_id)
        dedup.link_alerts(tx, {tip_key(predictor_id, p): alert_ids[event_id]
                               for event_id, tips in groups.items() for p in tips})
        for event_id, tips in groups.items():
            first = tips[0]
            outcome.alerted(alert_ids[event_id], MAIN_WEBHOOK,
                            f"new_tip predictor={who.nickname} match={first.home_team_name} vs"
                            f" {first.away_team_name} event={event_id} tips={len(tips)}")
            if not kicked_off(first.start_date_timestamp, now):
                outcome.watch[event_id] = first.start_date_timestamp
                self._agreement(tx, event_id, first.start_date_timestamp, now, outcome)

    # -- consensus ----------------------------------------------------------------------------------
    def _agreement(self, tx: Tx, event_id: int, start_ts: int, now: float, outcome: Outcome) -> None:
        """After new tips on a match: predictors who just made a consensus wait for the crowd's votes, which the
        fetcher asks for once (`shared.votes`); the votes record announces them (`_votes`)."""
        if self.rules.consensus_min < 1:
            return
        tips = [Tip(t.predictor_id, t.vote_type, t.vote) for t in dedup.tips_on_event(tx, event_id)
                if t.vote_type is not None]
        due = consensus(tips, consensusmembers.known(tx, event_id), self.rules.consensus_min, kicked_off=False)
        if due and consensusmembers.add_waiting(tx, event_id, due, now):
            outcome.votes_wanted[event_id] = start_ts

    def _votes(self, tx: Tx, event_id: int, votes: EventVotes, now: float, outcome: Outcome) -> None:
        """The crowd's votes of a match with a consensus waiting: one alert per pick with new members, unless the
        match kicked off meanwhile (then never)."""
        outcome.votes_done.add(event_id)
        tips = dedup.tips_on_event(tx, event_id)
        if not tips:
            return
        if not self.judge.movement_applies(tips[0].start_ts, now):
            consensusmembers.drop_waiting(tx, event_id)
            return
        claimed = consensusmembers.claim_waiting(tx, event_id)
        polls = votes.model_dump()
        prices = oddshistory.latest_prices(tx, event_id)
        order = {t.predictor_id: n for n, t in reversed(list(enumerate(tips)))}  # members as they tipped
        for market, pick in dict.fromkeys((m, p) for m, p, _ in claimed):
            joined = {pid for m, p, pid in claimed if (m, p) == (market, pick)}
            members = sorted(consensusmembers.of_pick(tx, event_id, market, pick),
                             key=lambda pid: order.get(pid, len(order)))
            alert = self._consensus_alert(tx, tips, market, pick, members, joined, polls, prices)
            alert_id = outbox.insert(tx, alert, webhook=MAIN_WEBHOOK, created_at=now, event_id=event_id)
            consensusmembers.announced(tx, event_id, market, pick, alert_id)
            outcome.alerted(alert_id, MAIN_WEBHOOK, f"consensus match={alert.match.home} vs {alert.match.away}"
                            f" event={event_id} pick={alert.pick} predictors={len(members)} new={len(joined)}")

    def _consensus_alert(self, tx: Tx, tips: list[dedup.AlertedTip], market: int, pick: str, members: list[str],
                         joined: set[str], polls: dict, prices: list[Price]) -> ConsensusAlert:
        on_pick = {t.predictor_id: t for t in tips if t.vote_type == market and t.vote.casefold() == pick}
        first = on_pick[members[0]] if members[0] in on_pick else tips[0]
        home, away = first.home, first.away
        current = current_price(prices, first.vote, market, home, away)
        return ConsensusAlert(
            match=_match_of(tx, first), market=market_name(market), pick=pick_label(first.vote, market, home, away),
            members=[ConsensusMember(predictor=predictors.info(tx, pid), odds=_tip_odds(on_pick.get(pid)),
                                     record=self._record(tx, pid), joined=pid in joined) for pid in members],
            best_odds=round(float(current.decimal), 3) if current is not None else None,
            crowd=[CrowdShare(pick=pick_label(vote, market, home, away), pct=round(pct, 1))
                   for vote, pct in crowd_shares(polls, market)],
            dissent=[Dissent(nickname=predictors.info(tx, t.predictor_id).nickname,
                             pick=pick_label(t.vote, market, home, away), odds=_tip_odds(t))
                     for t in tips if t.vote_type == market and t.vote.casefold() != pick],
        )

    def _record(self, tx: Tx, predictor_id: str) -> Record | None:
        """Our record of a predictor as an alert quotes it; None before anything of theirs settled."""
        figures = settlements.record_of(tx, predictor_id)
        return Record.of(figures, self.rules.min_settled) if figures is not None else None

    # -- line movement --------------------------------------------------------------------------
    def _odds(self, tx: Tx, event_id: int, odds: EventOdds, now: float, outcome: Outcome) -> None:
        for market_id, texts in unreadable_prices(odds).items():
            if self.said.first(("price", event_id, market_id)):
                log.warning("odds of event %d, market %d: price(s) not understood, left out: %s", event_id,
                            market_id, "; ".join(texts)[:300])
        # Odds older than what was already observed (a replay, a late entry) are history, never a movement.
        prices = all_prices(odds)
        later = oddshistory.superseded(tx, event_id, now)
        for tip in dedup.tips_on_event(tx, event_id):
            price = current_price(prices, tip.vote, tip.vote_type, tip.home, tip.away)
            if price is None:
                continue
            # Seen before kick-off: the closing price so far (an older observation never replaces it).
            settlements.record_closing(tx, tip.tip_key, float(price.decimal), now)
            tipped = decimal_of(tip.odds_fractional, tip.odds_decimal)
            if not later and tipped is not None and self.judge.movement_applies(tip.start_ts, now):
                self._movement(tx, tip, tipped, price, now, outcome)
        oddshistory.record(tx, event_id, prices, now, later=later)

    def _movement(self, tx: Tx, tip: dedup.AlertedTip, tipped: Fraction, price: Price, now: float,
                  outcome: Outcome) -> None:
        change = delta(tipped, price.decimal)
        decision = decide(change, tip.armed, self.rules.threshold)
        if decision.armed == tip.armed or not dedup.set_armed(tx, tip.tip_key, decision.armed):
            return
        if not decision.alert:
            return
        who = predictors.info(tx, tip.predictor_id)
        alert = LineMovementAlert(
            predictor=who,
            match=_match_of(tx, tip),
            tip=TipLine.of(tip.vote, tip.vote_type, tip.home, tip.away, float(tipped)),
            tip_odds=round(float(tipped), 3),
            current_odds=round(float(price.decimal), 3),
            delta=float(change),
        )
        alert_id = outbox.insert(tx, alert, webhook=MAIN_WEBHOOK, created_at=now,
                                 predictor_id=tip.predictor_id, event_id=tip.event_id)
        outcome.alerted(alert_id, MAIN_WEBHOOK,
                        f"line_movement predictor={who.nickname} match={tip.home} vs {tip.away}"
                        f" event={tip.event_id} {float(tipped):.2f}->{float(price.decimal):.2f}"
                        f" ({float(change) * 100:+.1f}%)")

    # -- health ---------------------------------------------------------------------------------
    def _health(self, tx: Tx, record: FetchRecord, body: dict, outcome: Outcome) -> None:
        recovered = record.subject.endswith("recovered")
        alert = HealthAlert(
            title="Sofascore reachable again" if recovered else "Sofascore is blocking requests",
            message=str(body.get("message", record.subject))[:1000],
            level="info" if recovered else "warning",
        )
        # A transition is one fetch of one subject: re-reading it (a crash before XACK, a replay) alerts nothing.
        alert_id = outbox.insert_once(tx, alert, webhook=HEALTH_WEBHOOK, created_at=record.fetched_at,
                                      source=f"fetched:{record.kind}:{record.subject}:{record.fetched_at!r}")
        if alert_id is not None:
            outcome.alerted(alert_id, HEALTH_WEBHOOK, f"health {record.subject}")


def _tip_odds(tip: dedup.AlertedTip | None) -> float | None:
    tipped = decimal_of(tip.odds_fractional, tip.odds_decimal) if tip is not None else None
    return round(float(tipped), 3) if tipped is not None else None


def _priced_now(tx: Tx, event_id: int, tips: list[Prediction]) -> list[TipLine]:
    """The tips of one match, each with the market's latest price of its pick when the match's odds were polled
    already (another tip on it), so the alert shows it against the tip's price."""
    prices = oddshistory.latest_prices(tx, event_id)
    lines = []
    for prediction in tips:
        line = TipLine.of_prediction(prediction)
        price = current_price(prices, prediction.vote, prediction.vote_type, prediction.home_team_name,
                              prediction.away_team_name)
        if price is not None:
            line.current_odds = round(float(price.decimal), 3)
        lines.append(line)
    return lines


def _event_id(record: FetchRecord) -> int:
    try:
        event_id = int(record.subject)
    except ValueError:
        raise BadRecord(f"{record.kind} record for a non-numeric event id {record.subject[:40]!r}") from None
    if not 0 <= event_id <= INT64_MAX:
        raise BadRecord(f"{record.kind} record for an event id outside the 64-bit range {record.subject[:40]!r}")
    return event_id


def _whose(record: FetchRecord) -> str:
    """Whose payload a record is, for a log line."""
    if record.kind == "predictions":
        return f"predictor {record.subject[:64]}"
    if record.kind == "odds":
        return f"odds of event {record.subject[:40]}"
    return record.kind


def _match_of(tx: Tx, tip: dedup.AlertedTip) -> MatchInfo:
    """The match as the tip's new-tip alert described it (slugs included)."""
    announced = outbox.find(tx, tip.alert_id) if tip.alert_id is not None else None
    if announced is not None and isinstance(announced.alert, NewTipAlert):
        return announced.alert.match
    return MatchInfo(event_id=tip.event_id, home=tip.home, away=tip.away, start_ts=tip.start_ts)
