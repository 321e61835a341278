"""rq's settings module for a plain `rq worker` on the project's Redis: `rq worker -c notifier.rqconfig alerts`.

rq reads REDIS_URL from the environment by itself, but only redis://, rediss:// and unix:// URLs; with a Sentinel
URL (shared/sentinelurl.py) it needs this module, which gives rq the project's REDIS_URL (from the environment
or `.env`) as rq's SENTINEL dictionary. The jobs build their own connections (notifier/context.py); `sofamon
notify`, the notifier supervisord runs, needs none of this.
"""
from __future__ import annotations

from shared.redisconn import rq_settings
from shared.settings import Settings

globals().update(rq_settings(Settings()))
