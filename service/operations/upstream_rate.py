"""Fine-tuning calls to the upstream, inside the request budget every worker shares.

`within_budget` waits for a token of the call's priority (`store.upstream_rate`) before making
the call, and pauses the whole bucket when the upstream answers 429, for its `Retry-After`
(a second when it gives none), before passing the error on: the runner's backoff still decides
when that job tries again. `TUNEGATE_UPSTREAM_RPM` sets the rate.

Within one context (a worker's task, the service) one caller per priority asks the bucket at a
time and the others queue behind it, in order: callers that wait for the same next token would
otherwise all ask again when it comes, and all but one be told to wait again, a round of Redis
calls per token for every waiting caller.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from service.errors import UpstreamRejected
from service.operations.context import Context
from service.store.upstream_rate import Priority

__all__ = ["Priority", "within_budget"]

T = TypeVar("T")
DEFAULT_PAUSE_SECONDS = 1.0


async def within_budget(ctx: Context, priority: Priority, call: Callable[[], Awaitable[T]]) -> T:
    await take_token(ctx, priority)
    try:
        return await call()
    except UpstreamRejected as error:
        if error.status == 429:
            await ctx.store.upstream_rate.pause(error.retry_after or DEFAULT_PAUSE_SECONDS)
        raise


async def take_token(ctx: Context, priority: Priority) -> None:
    async with _turn(ctx, priority):
        while wait := await ctx.store.upstream_rate.take(priority, ctx.settings.upstream_rpm):
            await anyio.sleep(wait)


def _turn(ctx: Context, priority: Priority) -> anyio.Lock:
    """The context's queue for asking the bucket at this priority (made on first use, inside
    the event loop the context serves)."""
    turns: dict[Priority, anyio.Lock] = ctx.extras.setdefault("upstream_rate_turns", {})
    return turns.setdefault(priority, anyio.Lock())
