"""Predictors as the latest leaderboard observed described them, for the statistics an alert shows."""
from __future__ import annotations

import json

from shared.alerts import PredictorInfo, StatsSummary
from shared.models import RankingEntry, VoteStatistics
from shared.storage import Tx


def upsert(tx: Tx, entry: RankingEntry, observed_at: float) -> None:
    """The predictor as a leaderboard fetched at `observed_at` describes it, unless a later one already did.

    `updated_at` is when the statistics were observed (the record's fetch time), so a leaderboard
    processed late or re-injected by a replay never rewinds them.
    """
    tx.execute(
        "INSERT INTO predictors (id, nickname, slug, stats, updated_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET nickname = excluded.nickname, slug = excluded.slug,"
        " stats = excluded.stats, updated_at = excluded.updated_at"
        " WHERE predictors.updated_at <= excluded.updated_at",
        (entry.id, entry.nickname, entry.slug, entry.vote_statistics.model_dump_json(by_alias=False), observed_at),
    )


def info(tx: Tx, predictor_id: str) -> PredictorInfo:
    """What an alert says about a predictor; a target user never seen on the leaderboard shows its id."""
    row = tx.one("SELECT nickname, stats FROM predictors WHERE id = ?", (predictor_id,))
    if row is None:
        return PredictorInfo(id=predictor_id, nickname=predictor_id)
    stats = VoteStatistics.model_validate(json.loads(row[1]))
    return PredictorInfo(
        id=predictor_id,
        nickname=row[0],
        all_time=StatsSummary.of(stats.all_time),
        current=StatsSummary.of(stats.current) if stats.current else None,
    )
