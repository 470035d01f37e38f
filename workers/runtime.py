"""The worker process's settings, and running one operation with a fresh context.

Each RQ task runs its operation under `asyncio.run` with its own Redis and upstream clients, so
the same async operations serve the HTTP service and the workers. A worker without an upstream
key uses the sandbox that `tunegate serve` published in Redis.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import SecretStr

from service.config import Settings
from service.errors import Unavailable
from service.logging import register_secrets
from service.operations.context import Context
from service.queue import TaskQueue
from service.store import Store, keys
from service.upstream import Upstream

T = TypeVar("T")
_process: dict[str, Settings] = {}
_thread = threading.local()


def configure(settings: Settings) -> None:
    """The settings tasks run with in this worker process."""
    keys.use_namespace(settings.redis_namespace)
    _process["settings"] = settings


def bind_thread(settings: Settings) -> None:
    """Settings for tasks run by this thread only (embedded workers: one process may hold
    several gateways, as tests do)."""
    _thread.settings = settings


def settings() -> Settings:
    bound: Settings | None = getattr(_thread, "settings", None) or _process.get("settings")
    if bound is None:
        raise RuntimeError("worker settings are not configured")
    return bound


async def build_context(current: Settings) -> Context:
    assert current.redis_url is not None
    store = Store(current.redis_url)
    if current.sandbox:
        endpoint = await store.workers.sandbox_endpoint()
        if endpoint is None:
            await store.aclose()
            raise Unavailable("No OPENAI_API_KEY and no sandbox published by `tunegate serve` yet")
        register_secrets([endpoint[1]])
        current = current.model_copy(
            update={"openai_base_url": endpoint[0], "openai_api_key": SecretStr(endpoint[1])}
        )
    return Context(
        settings=current,
        store=store,
        queue=TaskQueue(current.redis_url, current.redis_namespace),
        upstream=Upstream.from_settings(current),
    )


def run_operation(operation: Callable[[Context], Awaitable[T]]) -> T:
    async def main() -> T:
        ctx = await build_context(settings())
        try:
            return await operation(ctx)
        finally:
            ctx.queue.close()
            await ctx.aclose()

    return asyncio.run(main())
