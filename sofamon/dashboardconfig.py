"""rq-dashboard's configuration module when REDIS_URL is a Sentinel URL (`sofamon dashboard` runs
`rq-dashboard --config sofamon.dashboardconfig` then).

rq-dashboard reaches a master through Sentinel from a `redis+sentinel://hosts/service/db` URL
(RQ_DASHBOARD_REDIS_URL, which `sofamon dashboard` sets without credentials), but takes the passwords for it
only from its configuration: RQ_DASHBOARD_REDIS_PASSWORD for the master, RQ_DASHBOARD_REDIS_SENTINEL_PASSWORD
for the Sentinels (an environment variable RQ_DASHBOARD_REDIS_PASSWORD would be its deprecated
--redis-password option, and a password in that URL would be read without its %-escapes). They are read here
from REDIS_URL, in the dashboard's own process: on no command line, in no file.
"""
from __future__ import annotations

from shared import sentinelurl
from shared.settings import Settings

_redis_url = Settings().redis_url
if sentinelurl.is_sentinel(_redis_url):
    _parsed = sentinelurl.parse(_redis_url)
    RQ_DASHBOARD_REDIS_PASSWORD = _parsed.password
    RQ_DASHBOARD_REDIS_SENTINEL_PASSWORD = _parsed.sentinel_password
