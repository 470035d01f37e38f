"""Redis Sentinel: the sentinels are asked for the current master of the named service, and a
client reconnects through them when the master changes (a failover), so the service, the
workers and RQ follow the promoted replica. The URL's form is `service.redis_url`'s.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.sentinel
from redis.asyncio import sentinel as async_sentinel

from service.redis_url import SentinelURL, is_sentinel_url, parse_sentinel_url

__all__ = [
    "close_sentinels",
    "close_sentinels_sync",
    "connect_sentinel_async",
    "connect_sentinel_sync",
    "is_sentinel_url",
]


def _sentinel_kwargs(parsed: SentinelURL, options: dict[str, Any]) -> dict[str, Any]:
    timeouts = {k: v for k, v in options.items() if k.startswith("socket_")}
    if parsed.sentinel_password:
        timeouts["password"] = parsed.sentinel_password
    return timeouts


def connect_sentinel_sync(url: str, **options: Any) -> redis.Redis:
    """A client of the service's current master (`options` as for `redis.Redis`)."""
    parsed = parse_sentinel_url(url)
    watcher = redis.sentinel.Sentinel(
        parsed.sentinels, sentinel_kwargs=_sentinel_kwargs(parsed, options)
    )
    return watcher.master_for(parsed.service, db=parsed.db, password=parsed.password, **options)


def connect_sentinel_async(url: str, **options: Any) -> Any:
    """As `connect_sentinel_sync`, for `redis.asyncio`."""
    parsed = parse_sentinel_url(url)
    watcher = async_sentinel.Sentinel(
        parsed.sentinels, sentinel_kwargs=_sentinel_kwargs(parsed, options)
    )
    return watcher.master_for(parsed.service, db=parsed.db, password=parsed.password, **options)


async def close_sentinels(client: Any) -> None:
    """Close the connections to the sentinels behind an async client, if it has any."""
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    for sentinel in manager.sentinels if manager is not None else []:
        await sentinel.aclose()


def close_sentinels_sync(client: redis.Redis) -> None:
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    for sentinel in manager.sentinels if manager is not None else []:
        sentinel.close()
