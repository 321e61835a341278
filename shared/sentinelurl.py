"""REDIS_URL's Sentinel form, read here: redis-py reads redis://, rediss:// and unix:// URLs but has no URL for
Sentinel (`redis.sentinel.Sentinel` takes a list of addresses, `master_for` a service name).

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db][?option=value&...]
    rediss+sentinel://...   the same over TLS, to the master and to the Sentinels

- the user and password are the Redis servers' (the master's and its replicas'), as in a redis:// URL;
- the hosts are the Sentinels (port 26379 when none is given);
- the path names the service (the master's name in the Sentinels' `sentinel monitor` line) and the db (0);
- options: `sentinel_username`, `sentinel_password` for Sentinels that ask for their own credentials; with TLS,
  `ssl_ca_certs`, `ssl_cert_reqs` (none, optional, required), `ssl_certfile`, `ssl_keyfile` for both.

It is the form rq-dashboard reads (through the Redis-Sentinel-Url package), and the one several other tools
settled on. Standard library only: the settings import it to check REDIS_URL at startup. Error messages never
echo the URL (it may hold a password).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORT = 26379
FORM = "redis+sentinel://host:26379[,host:26379...]/service[/db]"
CREDENTIAL_OPTIONS = ("sentinel_username", "sentinel_password")
SSL_OPTIONS = ("ssl_ca_certs", "ssl_cert_reqs", "ssl_certfile", "ssl_keyfile")
SSL_CERT_REQS = ("none", "optional", "required")


@dataclass(frozen=True)
class SentinelURL:
    tls: bool
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    ssl: dict[str, str] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return SCHEMES[1] if self.tls else SCHEMES[0]

    @property
    def hosts(self) -> str:
        """`host:port,host:port`, as written in the URL."""
        return ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in self.sentinels)

    def master_kwargs(self) -> dict[str, Any]:
        """redis-py's connection arguments for the master (`Sentinel(**...)`, `master_for`)."""
        kwargs: dict[str, Any] = {"db": self.db, "username": self.username, "password": self.password}
        return {**kwargs, **self._tls()}

    def sentinel_kwargs(self) -> dict[str, Any]:
        """redis-py's connection arguments for the Sentinels themselves (`Sentinel(sentinel_kwargs=...)`)."""
        return {"username": self.sentinel_username, "password": self.sentinel_password, **self._tls()}

    def _tls(self) -> dict[str, Any]:
        return {"ssl": True, **self.ssl} if self.tls else {}

    def without_credentials(self) -> str:
        """The URL with neither passwords nor options: to print, or for a program given the passwords apart."""
        return f"{self.scheme}://{self.hosts}/{self.service}/{self.db}"


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES if "://" in url else False


def parse(url: str) -> SentinelURL:
    """The parts of a Sentinel URL; ValueError saying what is wrong (never quoting the URL)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"is not a valid Sentinel URL ({FORM})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"must be a {' or '.join(s + '://' for s in SCHEMES)} URL")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, colon, password = userinfo.partition(":")
    options = _options(parts.query, tls=scheme == SCHEMES[1])
    service, db = _path(parts.path)
    return SentinelURL(
        tls=scheme == SCHEMES[1], sentinels=_hosts(hostlist), service=service, db=db,
        username=unquote(username) or None, password=unquote(password) if colon and password else None,
        sentinel_username=options.pop("sentinel_username", None) or None,
        sentinel_password=options.pop("sentinel_password", None) or None, ssl=options)


def _hosts(hostlist: str) -> tuple[tuple[str, int], ...]:
    if not hostlist.strip():
        raise ValueError(f"names no Sentinel host ({FORM})")
    sentinels = []
    for item in hostlist.split(","):
        item = item.strip()
        if item.startswith("["):  # an IPv6 address: [::1]:26379
            host, _, rest = item[1:].partition("]")
            if rest and not rest.startswith(":"):
                raise ValueError(f"has a Sentinel address it cannot read ({FORM})")
            port = rest[1:] if rest else ""
        else:
            host, _, port = item.partition(":")
        if not host:
            raise ValueError(f"has a Sentinel without a host in its list ({FORM})")
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError("has a Sentinel port that is not a number from 1 to 65535")
        sentinels.append((host, int(port) if port else DEFAULT_PORT))
    return tuple(sentinels)


def _path(path: str) -> tuple[str, int]:
    names = [unquote(p) for p in path[1:].split("/")] if path.startswith("/") else []
    if len(names) > 1 and not names[-1]:
        names.pop()  # a trailing slash
    if not names or not names[0]:
        raise ValueError(f"names no service: put the master's name that the Sentinels monitor after the hosts"
                         f" ({FORM})")
    if len(names) > 2:
        raise ValueError(f"has more than a service and a db in its path ({FORM})")
    db = names[1] if len(names) == 2 else "0"
    if not db.isdigit():
        raise ValueError("has a db that is not a number (…/service/0)")
    return names[0], int(db)


def _options(query: str, tls: bool) -> dict[str, str]:
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in CREDENTIAL_OPTIONS + SSL_OPTIONS:
            known = ", ".join(CREDENTIAL_OPTIONS + SSL_OPTIONS)
            # A name is shown only when it looks like one (not, say, a password pasted in the wrong place).
            shown = f" {name}" if re.fullmatch(r"[a-z_]{1,40}", name) else ""
            raise ValueError(f"has an option{shown} that a Sentinel URL does not take (it takes {known})")
        if name in options:
            raise ValueError(f"gives the option {name} twice")
        if name in SSL_OPTIONS and not tls:
            raise ValueError(f"has {name} without TLS: use rediss+sentinel://")
        if name == "ssl_cert_reqs" and value not in SSL_CERT_REQS:
            raise ValueError(f"ssl_cert_reqs must be one of {', '.join(SSL_CERT_REQS)}")
        options[name] = value
    return options
