"""One log line when Redis or the database goes away, one when it answers again, whichever thread notices.

The worker, the scheduler and the maintenance thread of a notifier all meet the same outage; each
reports what it sees here (`failed` / `answered`) and the process logs it once, with the reason.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from shared.logs import error_line

log = logging.getLogger("notifier")


class Outage:
    """Whether a service (Redis, the database) is away, as far as this process knows."""

    def __init__(self, service: str, reason: Callable[[BaseException], str] = error_line) -> None:
        self.service = service
        self._reason = reason
        self._lock = threading.Lock()
        self._since: float | None = None
        self.recovered = threading.Event()  # set once each time the service answers again

    @property
    def away(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        """The service did not answer (or refused): logs one line at the start of an outage."""
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
            self.recovered.clear()
        log.warning("%s unavailable (%s): waiting for it; delivery resumes by itself", self.service,
                    self._reason(error))

    def answered(self) -> None:
        """The service answered: logs one line at the end of an outage."""
        if self._since is None:  # the common case, without taking the lock
            return
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            log.info("%s answers again (away %.0f s)", self.service, time.monotonic() - since)
            self.recovered.set()
