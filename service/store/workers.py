"""Worker heartbeats, so `/ready` can tell whether anyone will run queued work."""

from __future__ import annotations

import time

from service.store import keys
from service.store.base import Repository

HEARTBEAT_TTL_SECONDS = 60


class WorkerRepository(Repository):
    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def beat(self, worker_name: str) -> None:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.workers(), {worker_name: now})
            pipe.zremrangebyscore(keys.workers(), 0, now - HEARTBEAT_TTL_SECONDS)
            await pipe.execute()

    async def alive_count(self) -> int:
        since = time.time() - HEARTBEAT_TTL_SECONDS
        return int(await self.redis.zcount(keys.workers(), since, "+inf"))

    async def publish_sandbox(self, base_url: str, api_key: str) -> None:
        """Where this service's built-in sandbox listens, for workers with no upstream key."""
        await self.redis.hset(keys.sandbox(), mapping={"base_url": base_url, "api_key": api_key})

    async def sandbox_endpoint(self) -> tuple[str, str] | None:
        found = await self.redis.hgetall(keys.sandbox())
        if not found:
            return None
        return found["base_url"], found["api_key"]
