"""Redis Sentinel URLs: `redis+sentinel://[:password@]host:26379,host2:26379/mymaster/0`.

Parsed without redis so that settings can check one at start; `service.store.sentinel`
connects. The password (the userinfo's) is the master's and the replicas'; a
`sentinel_password` query parameter, when the sentinels need one of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

SCHEME = "redis+sentinel://"


@dataclass(frozen=True)
class SentinelURL:
    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    password: str | None = None
    sentinel_password: str | None = None


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SCHEME)


def parse_sentinel_url(url: str) -> SentinelURL:
    """Raises ValueError, naming what is wrong, for a malformed URL."""
    if not is_sentinel_url(url):
        raise ValueError(f"not a {SCHEME} URL")
    rest, _, query = url.removeprefix(SCHEME).partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    password = unquote(userinfo.partition(":")[2]) if userinfo else None
    sentinels = [_host_port(item) for item in hosts.split(",") if item]
    if not sentinels:
        raise ValueError("name at least one sentinel: redis+sentinel://host:26379/service/0")
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ValueError("name the master's service: redis+sentinel://host:26379/mymaster/0")
    if db and not db.isdigit():
        raise ValueError(f"the database must be a number, not {db!r}")
    params = {key: values[-1] for key, values in parse_qs(query).items()}
    return SentinelURL(
        sentinels=sentinels,
        service=service,
        db=int(db or 0),
        password=password or None,
        sentinel_password=params.get("sentinel_password") or None,
    )


def _host_port(item: str) -> tuple[str, int]:
    host, _, port = item.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"a sentinel is host:port, not {item!r}")
    return host.strip("[]"), int(port)
