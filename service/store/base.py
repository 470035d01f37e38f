"""Connections and the repository base that turns Redis failures into `Unavailable`."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from service.errors import Unavailable

T = TypeVar("T")
SOCKET_TIMEOUT_SECONDS = 2.0


def connect_redis(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=15,
    )


async def close_redis(client: aioredis.Redis) -> None:
    await client.aclose()


def _guard(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    @functools.wraps(method)
    async def guarded(*args: Any, **kwargs: Any) -> T:
        try:
            return await method(*args, **kwargs)
        except (RedisError, OSError) as error:
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
