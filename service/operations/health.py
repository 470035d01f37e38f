"""The gateway's health as the operator's console shows it: Redis, live workers (the heartbeat
`tunegate health --role worker` checks), the task queue's depth, and whether the configured
upstream answers one cheap call. Each check has its own short deadline and they run side by
side, so a Redis or an upstream that hangs costs the page a few seconds, never more."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import anyio

from service.domain.health import GatewayHealth, UpstreamReach
from service.errors import Unavailable
from service.logging import get_logger
from service.operations.context import Context

log = get_logger(__name__)

SANDBOX = "upstream.sandbox"  # in `ctx.extras`: the upstream is the sandbox this process started
UPSTREAM_SECONDS = 3.0  # the budget `tunegate health` gives an HTTP probe
REDIS_SECONDS = 3.0
OPENAI_HOST = "api.openai.com"


def upstream_name(ctx: Context) -> str:
    if ctx.extras.get(SANDBOX):
        return "the embedded sandbox"
    if urlsplit(ctx.settings.openai_base_url).hostname == OPENAI_HOST:
        return "OpenAI"
    return "an OpenAI-compatible upstream"


def upstream_url(base_url: str) -> str:
    """The base URL without anything secret a URL can carry (user info, query, fragment)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}"


async def _redis(ctx: Context, health: GatewayHealth) -> None:
    with anyio.move_on_after(REDIS_SECONDS):
        try:
            health.redis = await ctx.store.ping()
            health.workers = await ctx.store.workers.alive_count()
        except Unavailable:
            health.redis = False


async def _queues(ctx: Context, health: GatewayHealth) -> None:
    health.queues_problem = "no answer in time"
    with anyio.move_on_after(REDIS_SECONDS):
        try:
            health.queues = await ctx.queue.depths()
            health.queues_problem = None
        except Unavailable as error:
            health.queues_problem = error.message


async def _upstream(ctx: Context, health: GatewayHealth) -> None:
    try:
        health.upstream = await ctx.upstream.probe(UPSTREAM_SECONDS)
    except Exception as error:  # the page reports it rather than failing with it
        log.warning("upstream_probe_failed", error=type(error).__name__)
        problem = f"the check itself failed ({type(error).__name__})"
        health.upstream = UpstreamReach(False, problem=problem)


async def check_gateway(ctx: Context) -> GatewayHealth:
    health = GatewayHealth(redis=False, workers=0)
    health.upstream_name = upstream_name(ctx)
    health.upstream_url = upstream_url(ctx.settings.openai_base_url)
    checks: list[Any] = [_redis]
    if ctx.queue is not None:
        checks.append(_queues)
    else:
        health.queues_problem = "this process has no task queue"
    if ctx.upstream is not None:
        checks.append(_upstream)
    else:
        health.upstream = UpstreamReach(False, problem="this process has no upstream client")
    async with anyio.create_task_group() as group:
        for check in checks:
            group.start_soon(check, ctx, health)
    return health
