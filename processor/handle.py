"""Turn one fetched record into database changes and alerts (no Redis here: see processor.main)."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from pydantic import ValidationError

from processor import dedup, predictors
from processor.alertable import group_by_match, is_alertable
from processor.movement import Price, all_prices, current_price, decide, decimal_of, delta
from shared import outbox
from shared.alerts import HealthAlert, LineMovementAlert, MatchInfo, NewTipAlert, TipLine
from shared.logs import first_line
from shared.markets import market_name, pick_label
from shared.models import EventOdds, FetchRecord, Prediction, PredictionsPage, Ranking
from shared.settings import Settings
from shared.storage import Database, Tx
from shared.webhooks import HEALTH_WEBHOOK, MAIN_WEBHOOK

log = logging.getLogger(__name__)


class BadRecord(ValueError):
    """A record that can never be processed: it goes to the dead-letter stream."""


@dataclass
class Outcome:
    """What a record led to, for the Redis side effects done after the commit."""

    alert_ids: list[int] = field(default_factory=list)
    watch: dict[int, int] = field(default_factory=dict)  # event id -> kick-off
    summaries: list[str] = field(default_factory=list)  # one line per alert, for logs and replay


@dataclass(frozen=True)
class Rules:
    lookahead_hours: float
    grace_minutes: float
    threshold: float

    @classmethod
    def of(cls, settings: Settings) -> "Rules":
        return cls(settings.time_lookahead_hours, settings.match_grace_period_minutes, settings.line_movement_threshold)


def parse(record: FetchRecord) -> Ranking | PredictionsPage | EventOdds | dict:
    try:
        if record.kind == "leaderboard":
            return Ranking.model_validate_json(record.payload)
        if record.kind == "predictions":
            return PredictionsPage.model_validate_json(record.payload)
        if record.kind == "odds":
            return EventOdds.model_validate_json(record.payload)
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
    """`clock`, when given (live processing), also judges tips at the time they are processed, so a
    backlog handled late does not alert matches that kicked off meanwhile. Replays judge by fetch time only.
    """

    def __init__(self, db: Database, rules: Rules, clock: Callable[[], float] | None = None) -> None:
        self.db = db
        self.rules = rules
        self.clock = clock

    def handle(self, record: FetchRecord) -> Outcome:
        """Apply one record in one transaction; raises BadRecord for data that can never be processed."""
        parsed = parse(record)
        skipped = parsed.all_skipped if isinstance(parsed, EventOdds) else getattr(parsed, "skipped", [])
        if skipped:
            log.warning("%s %s: %d malformed item(s) left out, first: %s", record.kind, record.subject[:40],
                        len(skipped), skipped[0])
        outcome = Outcome()
        with self.db.tx() as tx:
            if isinstance(parsed, Ranking):
                for entry in parsed.ranking:
                    predictors.upsert(tx, entry, record.fetched_at)
            elif isinstance(parsed, PredictionsPage):
                self._predictions(tx, record.subject, parsed, record.fetched_at, outcome)
            elif isinstance(parsed, EventOdds):
                self._odds(tx, _event_id(record.subject), parsed, record.fetched_at, outcome)
            else:
                self._health(tx, record, parsed, outcome)
        return outcome

    # -- new tips -------------------------------------------------------------------------------
    def _predictions(self, tx: Tx, predictor_id: str, page: PredictionsPage, now: float, outcome: Outcome) -> None:
        rules = self.rules
        at = [now] if self.clock is None else [now, max(now, self.clock())]
        candidates = [p for p in page.predictions
                      if all(is_alertable(p, t, rules.lookahead_hours, rules.grace_minutes) for t in at)]
        claimed = [p for p in candidates if dedup.claim_tip(tx, predictor_id, p, now)]
        if not claimed:
            return
        who = predictors.info(tx, predictor_id)
        for event_id, tips in group_by_match(claimed).items():
            first = tips[0]
            alert = NewTipAlert(
                predictor=who,
                match=MatchInfo.of(first),
                tips=[_tip_line_of(p) for p in tips],
            )
            alert_id = outbox.insert(tx, alert, webhook=MAIN_WEBHOOK, created_at=now,
                                     predictor_id=predictor_id, event_id=event_id)
            dedup.link_alert(tx, [p.tip_key(predictor_id) for p in tips], alert_id)
            outcome.alert_ids.append(alert_id)
            outcome.summaries.append(
                f"new_tip predictor={who.nickname} match={first.home_team_name} vs {first.away_team_name}"
                f" event={event_id} tips={len(tips)}"
            )
            if first.start_date_timestamp > now:
                outcome.watch[event_id] = first.start_date_timestamp

    # -- line movement --------------------------------------------------------------------------
    def _odds(self, tx: Tx, event_id: int, odds: EventOdds, now: float, outcome: Outcome) -> None:
        for tip in dedup.tips_on_event(tx, event_id):
            if tip.start_ts <= now:
                continue
            price = current_price(odds, tip.vote, tip.vote_type, tip.home, tip.away)
            tipped = decimal_of(tip.odds_fractional, tip.odds_decimal)
            if price is not None and tipped is not None:
                self._movement(tx, tip, tipped, price, now, outcome)
        record_prices(tx, event_id, all_prices(odds), now)

    def _movement(self, tx: Tx, tip: dedup.AlertedTip, tipped: Fraction, price: Price, now: float,
                  outcome: Outcome) -> None:
        change = delta(tipped, price.decimal)
        decision = decide(change, tip.armed, self.rules.threshold)
        if decision.armed == tip.armed or not dedup.set_armed(tx, tip.tip_key, decision.armed):
            return
        if not decision.alert:
            return
        who = predictors.info(tx, tip.predictor_id)
        match = _match_of_tip(tx, tip)
        alert = LineMovementAlert(
            predictor=who,
            match=match,
            tip=_tip_line(tip.vote, tip.vote_type, tip.home, tip.away, float(tipped)),
            tip_odds=round(float(tipped), 3),
            current_odds=round(float(price.decimal), 3),
            delta=float(change),
        )
        alert_id = outbox.insert(tx, alert, webhook=MAIN_WEBHOOK, created_at=now,
                                 predictor_id=tip.predictor_id, event_id=tip.event_id)
        outcome.alert_ids.append(alert_id)
        outcome.summaries.append(
            f"line_movement predictor={who.nickname} match={tip.home} vs {tip.away} event={tip.event_id}"
            f" {float(tipped):.2f}->{float(price.decimal):.2f} ({float(change) * 100:+.1f}%)"
        )

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
            outcome.alert_ids.append(alert_id)
            outcome.summaries.append(f"health {record.subject}")


def record_prices(tx: Tx, event_id: int, prices: list[Price], now: float) -> None:
    """Odds history: a row for each price that differs from the last one recorded for its choice.

    Every price ever offered is kept, without a row per poll for prices that did not move.
    """
    rows = tx.all(
        "SELECT market_id, choice_group, choice, fractional FROM odds_history WHERE id IN"
        " (SELECT MAX(id) FROM odds_history WHERE event_id = ? GROUP BY market_id, choice_group, choice)",
        (event_id,),
    )
    latest = {(int(m), g, c): f for m, g, c, f in rows}
    for price in prices:
        if latest.get((price.market_id, price.choice_group, price.choice)) == price.fractional:
            continue
        tx.execute(
            "INSERT INTO odds_history (event_id, market_id, choice_group, choice, fractional, decimal, observed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event_id, price.market_id, price.choice_group, price.choice, price.fractional, float(price.decimal), now),
        )


def _event_id(subject: str) -> int:
    try:
        return int(subject)
    except ValueError:
        raise BadRecord(f"odds record for a non-numeric event id {subject[:40]!r}") from None


def _tip_line(vote: str, vote_type: int | None, home: str, away: str, odds: float | None) -> TipLine:
    return TipLine(market=market_name(vote_type), pick=pick_label(vote, vote_type, home, away),
                   odds=round(odds, 3) if odds else None)


def _tip_line_of(prediction: Prediction) -> TipLine:
    odds = prediction.odds
    price = decimal_of(odds.fractional_value, odds.decimal_value) if odds else None
    return _tip_line(prediction.vote, prediction.vote_type, prediction.home_team_name, prediction.away_team_name,
                     float(price) if price else None)


def _match_of_tip(tx: Tx, tip: dedup.AlertedTip) -> MatchInfo:
    """The match as the tip's new-tip alert described it (slugs included)."""
    row = tx.one("SELECT payload FROM alerts WHERE id = (SELECT alert_id FROM tips WHERE tip_key = ?)", (tip.tip_key,))
    if row:
        original = json.loads(row[0])
        if "match" in original:
            return MatchInfo.model_validate(original["match"])
    return MatchInfo(event_id=tip.event_id, home=tip.home, away=tip.away, start_ts=tip.start_ts)
