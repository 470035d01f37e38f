"""Connections, the repository base that turns an unreachable Redis into `Unavailable`, and the
compare-and-set every record change goes through.

Only a Redis we cannot reach (no connection, a timeout, a server still loading or a replica during
a failover) is `Unavailable` (503). An error Redis answers with (a wrong type, an invalid
argument) is our bug and stays one: it leaves as a 500 with its traceback, never as "retry"."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.embedded import connect_embedded, is_embedded_url
from service.errors import Unavailable
from service.store.sentinel import close_sentinels, connect_sentinel_async, is_sentinel_url

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
SOCKET_TIMEOUT_SECONDS = 2.0
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)
MAX_WRITE_TRIES = 20


def connect_redis(url: str) -> aioredis.Redis:
    if is_embedded_url(url):
        return connect_embedded(url, asyncio=True, decode_responses=True)  # type: ignore[no-any-return]
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": SOCKET_TIMEOUT_SECONDS,
        "socket_connect_timeout": SOCKET_TIMEOUT_SECONDS,
        "health_check_interval": 15,
    }
    if is_sentinel_url(url):
        return connect_sentinel_async(url, **options)  # type: ignore[no-any-return]
    return aioredis.Redis.from_url(url, **options)


async def close_redis(client: aioredis.Redis) -> None:
    await client.aclose()
    await close_sentinels(client)


def _guard(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(method)
    async def guarded(*args: Any, **kwargs: Any) -> T:
        try:
            return await method(*args, **kwargs)
        except UNREACHABLE as error:
            raise Unavailable("The gateway's data store is unavailable; retry shortly.") from error

    return guarded


class Repository:
    """Base for store repositories: every public coroutine method is guarded."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(member):
                setattr(cls, name, _guard(member))


async def compare_and_set(
    redis: aioredis.Redis,
    key: str,
    model: type[M],
    change: Callable[[M], M | None],
    write: Callable[[Any, M, M], None],
    what: str,
) -> M | None:
    """Apply `change` to a copy of the record at `key` and queue `write(pipe, old, new)` in one
    transaction (WATCH / MULTI), trying again when the record moved meanwhile. `change` returns
    None to write nothing. The result is the record as stored; None when there is none."""
    for _ in range(MAX_WRITE_TRIES):
        async with redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                if raw is None:
                    return None
                old = model.model_validate_json(raw)
                new = change(model.model_validate_json(raw))  # a copy, cheaper to parse
                if new is None:
                    return old
                pipe.multi()
                write(pipe, old, new)
                await pipe.execute()
                return new
            except WatchError:
                continue
    raise Unavailable(f"{what} is changing too often to update; retry shortly.")
