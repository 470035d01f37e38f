"""When the workers next look at a job: the due set, and the delayed tasks that drain it.

A job that needs a worker (to check its files, submit it, poll it, finish it) carries a due time,
indexed in Redis with the record. `advance_due_jobs` tasks drain that set; no worker ever
sleeps inside a job. Making a job due queues a delayed task for the job's second, named after it
(`tg-due-<second>`), so however many jobs fall due in one second, one task takes them all; the
second is always in the future, so that task cannot have started yet. While a task is draining
it is registered with the time it stops taking jobs (`draining`), and jobs due before then
queue nothing: under load, one or two long tasks do the work instead of a flood of short ones.
A task that stops queues the task for the earliest job still due, after leaving the register, so
a job that fell due meanwhile is either seen by it or queues its own task.

If a task is lost (a worker killed mid-run, or RQ's scheduler lock held by a dead worker for up
to a minute), its jobs stay due: the sweeper queues an immediate task once any is overdue by a
sweep interval.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from service.logging import get_logger
from service.operations.context import Context

BUCKET_SECONDS = 1.0
TASK = "advance_due_jobs"
DRAINING = "jobs.draining_until"  # in `ctx.extras`: this process drains until then
log = get_logger(__name__)


async def queue_due(ctx: Context, due_at: float | None) -> None:
    """Make sure a task will take the job at or just after `due_at`. The due set is what
    counts: if the task cannot be queued, the sweeper finds the job overdue, so this logs
    instead of failing a change that is already recorded."""
    if due_at is None or due_at < ctx.extras.get(DRAINING, 0.0):
        return
    try:
        if due_at < await ctx.store.jobs.drained_until():
            return
        now = time.time()
        bucket = math.floor(max(due_at, now) / BUCKET_SECONDS) + 1
        delay = bucket * BUCKET_SECONDS - now
        await ctx.queue.submit(TASK, job_id=f"tg-due-{bucket}", delay_seconds=delay)
    except Exception:
        log.warning("job_task_not_queued", due_at=due_at, exc_info=True)


async def queue_now(ctx: Context) -> None:
    """A task at once, not through RQ's scheduler, unless one is draining already: the poll
    cycle has just made jobs due."""
    now = time.time()
    if now < await ctx.store.jobs.drained_until():
        return
    await ctx.queue.submit(TASK, job_id=f"tg-due-now-{math.floor(now)}")


async def ask_for_help(ctx: Context) -> None:
    """Another task now, for another worker: more jobs are due than one task advances at once."""
    await ctx.queue.submit(TASK, job_id=f"tg-due-help-{math.floor(time.time())}")


@asynccontextmanager
async def draining(ctx: Context, seconds: float) -> AsyncIterator[float]:
    """Register this task as taking every job that falls due for `seconds`; yields until when."""
    name, now = uuid.uuid4().hex, time.time()
    until = now + seconds
    await ctx.store.jobs.start_draining(name, until, now)
    ctx.extras[DRAINING] = until
    try:
        yield until
    finally:
        ctx.extras.pop(DRAINING, None)
        with anyio.CancelScope(shield=True):
            await ctx.store.jobs.stop_draining(name)
            await queue_due(ctx, await ctx.store.jobs.earliest_due())


def overdue_after(ctx: Context) -> float:
    """How late a due job may be before the sweeper steps in."""
    return max(2 * BUCKET_SECONDS, ctx.settings.sweep_seconds)


async def requeue_overdue(ctx: Context) -> int:
    """Sweeper: queue an immediate task when jobs are overdue; returns how many are."""
    now = time.time()
    overdue = await ctx.store.jobs.due(now - overdue_after(ctx), limit=1000)
    if overdue:
        bucket = math.floor(now / ctx.settings.sweep_seconds)
        await ctx.queue.submit(TASK, job_id=f"tg-due-sweep-{bucket}")
    return len(overdue)
