"""Waiting out Redis or the database: one retry policy for every process, built on tenacity.

A process that loses a service logs one line per failed try, waits (doubling from `first` up to
`most` seconds) and tries again, until it works, `attempts` ran out (the last error is raised) or
`stopping` is set (then the last error is raised at once, without waiting).
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
)
from tenacity.stop import stop_base

OnRetry = Callable[[BaseException, float], None]


def until_available(
    errors: tuple[type[BaseException], ...],
    *,
    stopping: threading.Event,
    on_retry: OnRetry,
    first: float = 1.0,
    most: float = 30.0,
    attempts: int | None = None,
) -> Retrying:
    """`for attempt in until_available(...): with attempt: ...` runs the block until it stops raising `errors`.

    `on_retry(error, seconds)` is called before each wait, for the process's one log line.
    """
    stop: stop_base = stop_when_event_set(stopping)
    if attempts is not None:
        stop = stop | stop_after_attempt(attempts)

    def before_sleep(state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        error = state.outcome.exception()
        assert error is not None
        on_retry(error, state.next_action.sleep)

    return Retrying(
        retry=retry_if_exception_type(errors),
        wait=wait_exponential(multiplier=first, min=first, max=most),
        stop=stop,
        sleep=stopping.wait,
        before_sleep=before_sleep,
        reraise=True,
    )
