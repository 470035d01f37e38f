"""Fine-tuning calls to the upstream, inside the request budget every worker shares.

`within_budget` waits for a token of the call's priority (`store.upstream_rate`) before making
the call, and pauses the whole bucket when the upstream answers 429, for its `Retry-After`
(a second when it gives none), before passing the error on: the runner's backoff still decides
when that job tries again. `TUNEGATE_UPSTREAM_RPM` sets the rate.

Within one context (a worker's task, the service) one caller per priority asks the bucket at a
time and the others queue behind it, in order: callers that wait for the same next token would
otherwise all ask again when it comes, and all but one be told to wait again, a round of Redis
calls per token for every waiting caller. The caller that asks takes tokens for the whole queue
(at most `MAX_TAKE`), and those behind it use them without asking: a drain polling 32 jobs at
once asks Redis once, not 32 times. A token left unused for `CREDIT_SECONDS` (its caller gave
up) is dropped, never carried over: the rate can only come out lower than set, never higher.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import anyio

from service.errors import UpstreamRejected
from service.operations.context import Context
from service.store.upstream_rate import Priority

__all__ = ["Priority", "within_budget"]

T = TypeVar("T")
DEFAULT_PAUSE_SECONDS = 1.0
MAX_TAKE = 32  # tokens asked for at once, for the callers queued
CREDIT_SECONDS = 1.0  # how long tokens taken for queued callers are kept


async def within_budget(
    ctx: Context, priority: Priority, call: Callable[[], Awaitable[T]], *, ahead: int = 1
) -> T:
    """Make `call` once a token is taken; `ahead`: how many calls in a row the caller expects
    to make (a list walk's pages), taken together if they are there."""
    await take_token(ctx, priority, ahead)
    try:
        return await call()
    except UpstreamRejected as error:
        if error.status == 429:
            for queue in _queues(ctx).values():
                queue.credit = 0  # the pause holds this process's callers too
            await ctx.store.upstream_rate.pause(error.retry_after or DEFAULT_PAUSE_SECONDS)
        raise


async def take_token(ctx: Context, priority: Priority, ahead: int = 1) -> None:
    queue = _queue(ctx, priority)
    queue.waiting += 1
    try:
        async with queue.turn:
            if queue.credit and time.monotonic() < queue.credit_until:
                queue.credit -= 1
                return
            rpm = ctx.settings.upstream_rpm
            while True:
                want = min(max(queue.waiting, ahead), MAX_TAKE)
                taken = await ctx.store.upstream_rate.take(priority, rpm, want)
                if taken.tokens:
                    queue.credit = taken.tokens - 1
                    queue.credit_until = time.monotonic() + CREDIT_SECONDS
                    return
                await anyio.sleep(taken.wait)
    finally:
        queue.waiting -= 1


@dataclass
class _Queue:
    turn: anyio.Lock = field(default_factory=anyio.Lock)
    waiting: int = 0  # callers in the queue, the one asking included
    credit: int = 0  # tokens taken for them and not used yet
    credit_until: float = 0.0


def _queue(ctx: Context, priority: Priority) -> _Queue:
    """The context's queue for asking the bucket at this priority (made on first use, inside
    the event loop the context serves)."""
    return _queues(ctx).setdefault(priority, _Queue())


def _queues(ctx: Context) -> dict[Priority, _Queue]:
    queues: dict[Priority, _Queue] = ctx.extras.setdefault("upstream_rate_queues", {})
    return queues
