"""`sofamon fetch`: poll Sofascore on the schedule and write what comes back into Redis."""
from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import redis

from fetcher import peers
from fetcher.client import SofascoreClient
from fetcher.cycle import CycleReport, Fetcher
from shared import heartbeat, instance, malloc
from shared.keys import Keys
from shared.logs import setup_logging
from shared.redisconn import connect
from shared.retry import until_available
from shared.settings import Settings
from shared.timefmt import utc_stamp

log = logging.getLogger("fetcher")

REDIS_RETRY_SECONDS = 10.0


@contextmanager
def _stop_on_signals(stop: threading.Event, fetcher: Fetcher) -> Iterator[None]:
    """SIGTERM/SIGINT: finish the request in hand, write it, then leave (handlers only in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        fetcher.request_stop()
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _beater(conn: redis.Redis, keys: Keys, name: str, fetcher: Fetcher, settings: Settings,
            mode: str | None) -> heartbeat.Beater:
    """The fetcher's heartbeat, beaten from a thread of its own through cycles and sleeps alike (Redis away:
    the cycle already logs it); a long-running fetcher also says at each beat that it still shares the work."""
    beating = heartbeat.Beater(conn, keys, name, heartbeat.Timing.of(settings), mode=mode,
                               info=lambda: {"next_poll_at": fetcher.state.next_poll_at,
                                             "last_cycle_at": fetcher.state.last_cycle_at,
                                             "fetchers": len(fetcher.peers) or 1, "predictors": fetcher.owned})
    if mode is None:
        beating.on_beat = lambda: peers.alive(conn, keys, name, fetcher.clock(), fetcher.live_seconds)  # still sharing
    return beating


def _load_state(fetcher: Fetcher, stop: threading.Event, once: bool) -> bool:
    """Read the stored state before the first request; without it a restart would forget a block."""

    def on_retry(error: BaseException, seconds: float) -> None:
        log.error("Redis unreachable (%s); retrying in %.0f s", type(error).__name__, seconds)

    try:
        for attempt in until_available((redis.RedisError,), stopping=stop, on_retry=on_retry,
                                       first=REDIS_RETRY_SECONDS, most=REDIS_RETRY_SECONDS,
                                       attempts=1 if once else None):
            with attempt:
                fetcher.load_state()
    except redis.RedisError as error:
        if once:
            log.error("Redis unreachable (%s)", type(error).__name__)
        return False
    return True


def _sleep(stop: threading.Event, seconds: float) -> None:
    """Sleep until the next poll or a stop signal."""
    stop.wait(max(0.0, seconds))


def _cycle(fetcher: Fetcher) -> CycleReport | None:
    try:
        return fetcher.run_cycle()
    except Exception as error:  # noqa: BLE001 - one bad cycle must not end the process
        log.error("cycle failed: %s: %s", type(error).__name__, str(error)[:200])
        return None


def _once_status(report: CycleReport | None, fetcher: Fetcher) -> int:
    """`--once`: 0 when the cycle got a good answer (or had nothing to ask) and wrote everything, else 1."""
    if report is None:
        return 1  # the cycle failed, said above
    if fetcher.pending:
        log.error("%d fetched record(s) not written: Redis unavailable", fetcher.pending)
        return 1
    if report.skipped_blocked:
        log.error("no good answer from Sofascore: the upstream backoff allows no request until %s",
                  utc_stamp(fetcher.state.upstream.until))
        return 1
    if report.requests and not report.written:
        log.error("no good answer from Sofascore: all %d request(s) of the cycle failed", report.requests)
        return 1
    return 0


def run(
    settings: Settings,
    once: bool,
    *,
    clock: Callable[[], float] = time.time,
    stop: threading.Event | None = None,
    rng: random.Random | None = None,
) -> int:
    """Exit status: 0 after a stop signal, or after `once` when its cycle got a good answer from Sofascore and
    wrote it; 1 with `once` when Redis is unreachable, data stays unwritten or no request got a good answer."""
    setup_logging(settings, "fetcher")
    malloc.fix_mmap_threshold()  # the fetcher's answers are large and many: their memory goes back once freed
    stop = stop or threading.Event()
    rng = rng or random.Random()
    conn = connect(settings)
    keys = Keys.of(settings)
    name = instance.process_name("fetcher")
    try:
        with SofascoreClient(settings) as client:
            fetcher = Fetcher(settings, conn, client, clock=clock, name=None if once else name)
            fetcher.sleep = lambda seconds: _sleep(stop, seconds)
            with _stop_on_signals(stop, fetcher):
                beating = _beater(conn, keys, name, fetcher, settings, heartbeat.ONCE if once else None).start()
                try:
                    if not _load_state(fetcher, stop, once):
                        return 1 if once else 0
                    if once:
                        report = _cycle(fetcher)
                        beating.beat_quietly()  # with the cycle's times: status lists the run after it ended
                        fetcher.flush_pending()
                        return _once_status(report, fetcher)
                    _loop(fetcher, stop, rng)
                finally:
                    beating.stop(clear_it=False)  # no beat (nor peer registration) after this
                    if not once:  # a clean stop: the others take its share at once, and it is gone
                        fetcher.leave_peers()
                        try:
                            heartbeat.clear(conn, keys, name)
                        except redis.RedisError:
                            pass
                return 0
    finally:
        conn.close()


def _loop(fetcher: Fetcher, stop: threading.Event, rng: random.Random) -> None:
    log.info("fetcher started")
    while not stop.is_set():
        _cycle(fetcher)
        if stop.is_set():
            break
        delay = fetcher.next_delay(rng)
        fetcher.schedule_next(fetcher.clock() + delay)
        log.info("Next poll in %.0f s", delay)
        _sleep(stop, delay)
    fetcher.flush_pending()
    if fetcher.pending:
        log.error("%d fetched record(s) not written: Redis unavailable", fetcher.pending)
    log.info("fetcher stopped")
