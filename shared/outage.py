"""One log line when Redis or the database goes away, one when it answers again, whichever thread notices.

The notifier's worker, scheduler and maintenance thread all meet the same outage, and the processor's
retries meet it again and again; each reports what it sees here (`failed` / `answered`) and the process
logs it once, with the reason and what happens meanwhile.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from shared.logs import error_line, first_line
from shared.redisconn import refusal_name
from shared.timefmt import duration


class Outage:
    """Whether a service (Redis, the database) is away, as far as this process knows."""

    def __init__(self, service: str, log: logging.Logger, meanwhile: str, *,
                 reason: Callable[[BaseException], str] = error_line, level: int = logging.WARNING) -> None:
        self.service = service
        self._log = log
        self._meanwhile = meanwhile  # what the process does while it waits, for the first line
        self._reason = reason
        self._level = level
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
        self._log.log(self._level, "%s unavailable (%s): waiting for it; %s", self.service, self._reason(error),
                      self._meanwhile)

    def answered(self) -> None:
        """The service answered: logs one line at the end of an outage."""
        if self._since is None:  # the common case, without taking the lock
            return
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            self._log.info("%s answers again (away %s)", self.service, duration(time.monotonic() - since))
            self.recovered.set()


def redis_reason(error: BaseException) -> str:
    """`OOM: command not allowed when used memory > 'maxmemory'.`, `ConnectionError: Error 111 ...`."""
    return f"{refusal_name(error)}: {first_line(error)}"
