"""Telling every process that an org's keys, policy, models or aliases changed.

A write publishes the org id on one channel (`keys.invalidations`), in the same transaction as
the write itself; each process that caches callers' views listens and drops that org's views as
the message arrives. A process caches views only while its subscription is confirmed: until it
is, or after it breaks (Redis restarted, a failover), every request reads Redis, and the
subscription is taken again with a backoff. The views' short lifetime stays as the backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from service.logging import get_logger
from service.store import keys

log = get_logger(__name__)
RETRY_CEILING_SECONDS = 5.0


def publish(pipe: Any, org_id: str) -> None:
    """Queue the notice on a pipeline that writes the org's records."""
    pipe.publish(keys.invalidations(), org_id)


class Listener:
    """Calls `forget(org_id)` for every notice, and `forget_all()` whenever notices may have
    been missed; `live` says whether they are arriving now."""

    def __init__(
        self, redis: Redis, forget: Callable[[str], None], forget_all: Callable[[], None]
    ) -> None:
        self.redis = redis
        self.forget = forget
        self.forget_all = forget_all
        self.live = False
        self._task: asyncio.Task[None] | None = None

    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            if task.get_loop() is asyncio.get_running_loop():
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = None
        self.live = False

    async def _run(self) -> None:
        delay = 0.25
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("invalidation_listener_lost", error=type(error).__name__)
            self._lost()
            await asyncio.sleep(delay)
            delay = min(RETRY_CEILING_SECONDS, delay * 2)

    async def _listen(self) -> None:
        async with self.redis.pubsub() as pubsub:
            await pubsub.subscribe(keys.invalidations())
            try:
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._receive(message)
            finally:
                self._lost()

    def _receive(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            self.live = True
        elif message["type"] == "message":
            self.forget(str(message["data"]))

    def _lost(self) -> None:
        self.live = False
        self.forget_all()
