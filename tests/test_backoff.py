"""Backoff state with a fixed clock: predictor pauses and the global upstream backoff."""
from __future__ import annotations

import pytest

from fetcher.backoff import PredictorState, UpstreamBackoff, record_result
from fetcher.state import FetcherState, predictor_from_json, predictor_json

T0 = 1_795_348_800.0


# -- per predictor ----------------------------------------------------------------------------


def test_404_pauses_a_predictor_for_30_minutes() -> None:
    state = PredictorState(nickname="GoalGuru_88")
    effect = record_result(state, "not_found", T0)
    assert effect == "predictor paused 30 min"
    assert state.paused_until == T0 + 1800
    assert state.is_paused(T0 + 1799)
    assert not state.is_paused(T0 + 1800)
    assert state.last_status == "not_found"


def test_three_failures_in_a_row_pause_and_a_success_resets() -> None:
    state = PredictorState()
    assert record_result(state, "error", T0) == "failure 1/3"
    assert record_result(state, "error", T0 + 60) == "failure 2/3"
    assert not state.is_paused(T0 + 60)
    assert record_result(state, "error", T0 + 120) == "3 failures in a row; predictor paused 30 min"
    assert state.paused_until == T0 + 120 + 1800
    assert state.strikes == 0  # a fresh count after the pause

    other = PredictorState()
    record_result(other, "error", T0)
    record_result(other, "error", T0)
    assert record_result(other, "ok", T0 + 5) is None
    assert (other.strikes, other.last_fetch, other.last_status) == (0, T0 + 5, "ok")
    record_result(other, "error", T0 + 10)
    assert not other.is_paused(T0 + 10)  # not three in a row


@pytest.mark.parametrize("kind", ["challenge", "rate_limited"])
def test_upstream_blocks_are_not_the_predictors_fault(kind: str) -> None:
    state = PredictorState(strikes=2)
    assert record_result(state, kind, T0) is None  # type: ignore[arg-type]
    assert state.strikes == 2 and state.paused_until is None
    assert state.last_status == kind


def test_predictor_state_round_trips_through_json() -> None:
    state = PredictorState("Tactico.ES", last_fetch=T0, strikes=2, paused_until=T0 + 1800, last_status="error")
    assert predictor_from_json(predictor_json(state)) == state
    assert predictor_from_json(predictor_json(state).encode()) == state
    assert predictor_from_json('{"nickname": "x", "future_field": 1}') == PredictorState("x")


# -- upstream ------------------------------------------------------------------------------------


def test_first_block_waits_60_seconds_and_announces_itself_once() -> None:
    backoff = UpstreamBackoff()
    started = backoff.on_block(T0, reason="challenge page (HTTP 403)")
    assert started is not None and started.kind == "blocked_started"
    assert started.until == T0 + 60
    assert "challenge page (HTTP 403)" in started.message and "60 s" in started.message
    assert backoff.is_blocked(T0 + 59.9)
    assert not backoff.is_blocked(T0 + 60)
    assert backoff.active  # until a request succeeds


def test_answers_in_flight_during_a_block_neither_double_nor_end_it() -> None:
    backoff = UpstreamBackoff()
    backoff.on_block(T0)
    assert backoff.on_block(T0 + 1) is None
    assert backoff.until == T0 + 60 and backoff.seconds == 60
    assert backoff.on_success(T0 + 2) is None
    assert backoff.active


def test_consecutive_blocks_double_up_to_30_minutes_without_new_announcements() -> None:
    backoff = UpstreamBackoff()
    now = T0
    assert backoff.on_block(now) is not None
    waits = []
    for _ in range(8):
        now = backoff.until  # the wait is over, the retry is challenged again
        assert backoff.on_block(now) is None
        waits.append(backoff.until - now)
    assert waits == [120, 240, 480, 960, 1800, 1800, 1800, 1800]
    assert backoff.blocked_since == T0


def test_retry_after_is_honoured_when_longer() -> None:
    backoff = UpstreamBackoff()
    backoff.on_block(T0, retry_after=120)
    assert backoff.until == T0 + 120
    assert backoff.seconds == 60  # the ladder itself is unchanged
    shorter = UpstreamBackoff()
    shorter.on_block(T0, retry_after=5)
    assert shorter.until == T0 + 60
    # A longer Retry-After on an answer that was in flight extends the block.
    shorter.on_block(T0 + 10, retry_after=300)
    assert shorter.until == T0 + 310


def test_the_block_ends_after_30_minutes_of_answers_without_a_block() -> None:
    backoff = UpstreamBackoff()
    backoff.on_block(T0)
    assert backoff.on_success(T0 + 60) is None  # requests again, yet one good answer proves little
    assert backoff.on_success(T0 + 60 + 1799) is None
    assert backoff.active and backoff.seconds == 60
    ended = backoff.on_success(T0 + 60 + 1800)
    assert ended is not None and ended.kind == "blocked_ended"
    assert "30 min" in ended.message
    assert backoff.on_success(T0 + 60 + 1801) is None
    assert not backoff.active and backoff.until is None
    again = backoff.on_block(T0 + 4000)  # a new block starts from 60 s and is announced
    assert again is not None and backoff.until == T0 + 4060


def test_intermittent_blocks_keep_doubling_the_ladder() -> None:
    """One 429 per cycle between good answers: the ladder doubles as for consecutive blocks, announced once."""
    backoff = UpstreamBackoff()
    now = T0
    transitions = [backoff.on_block(now)]
    waits = [backoff.until - now]
    for _ in range(7):
        now = backoff.until  # the next cycle: good answers first, then one 429
        transitions.append(backoff.on_success(now))
        transitions.append(backoff.on_block(now + 5))
        waits.append(backoff.until - (now + 5))
    assert waits == [60, 120, 240, 480, 960, 1800, 1800, 1800]
    assert [t.kind for t in transitions if t is not None] == ["blocked_started"]


def test_success_with_no_block_is_nothing() -> None:
    assert UpstreamBackoff().on_success(T0) is None


def test_backoff_round_trips_through_hash_fields() -> None:
    backoff = UpstreamBackoff()
    backoff.on_block(T0)
    backoff.on_block(T0 + 60)
    fields, _ = FetcherState(upstream=backoff).to_hashes()
    assert {k: fields[k] for k in ("backoff_until", "backoff_seconds", "blocked_since")} == \
        {"backoff_until": repr(T0 + 180), "backoff_seconds": "120.0", "blocked_since": repr(T0)}
    restored = from_fields({k: v.encode() for k, v in fields.items()})  # Redis gives bytes
    assert (restored.until, restored.seconds, restored.blocked_since) == (T0 + 180, 120.0, T0)
    assert restored.is_blocked(T0 + 179)
    cleared = from_fields({"backoff_until": "", "backoff_seconds": "0.0", "blocked_since": ""})
    assert not cleared.active and not cleared.is_blocked(T0)
    assert from_fields({}) == UpstreamBackoff()


def from_fields(fields: dict) -> UpstreamBackoff:
    return FetcherState.from_hashes(fields, {}).upstream
