"""When the workers next look at a sweep: its trials' jobs wake it, and a slow heartbeat
catches anything a crash lost.

A sweep never waits inside a worker. It is due when something may have moved it: created, a
trial's job reported new metrics (`jobs.watch`) or finished (`jobs.finish`'s `sweep` step), a
cancel. Waking a sweep makes it due and queues a delayed `advance_due_sweeps` task named after
the next second (`tg-sweeps-<second>`), so however many trials wake it in one second, one task
runs, and that task cannot have started yet. While it runs, the sweep is due again one
`HEARTBEAT_SECONDS` later; the sweeper queues a task for sweeps overdue by a sweep interval.
"""

from __future__ import annotations

import math
import time

from service.domain.sweeps.trials import sweep_of
from service.logging import get_logger
from service.operations.context import Context
from service.store.jobs import JobRecord

TASK = "advance_due_sweeps"
HEARTBEAT_SECONDS = 30.0
log = get_logger(__name__)


async def wake_sweep(ctx: Context, sweep_id: str, at: float | None = None) -> None:
    due = time.time() if at is None else at
    await ctx.store.sweeps.wake(sweep_id, due)
    await queue_task(ctx, due)


async def queue_task(ctx: Context, due_at: float) -> None:
    """A task at or just after `due_at`. The due set is what counts: if the task cannot be
    queued, the sweeper finds the sweep overdue, so this logs instead of failing."""
    bucket = math.floor(max(due_at, time.time())) + 1
    try:
        delay = bucket - time.time()
        await ctx.queue.submit(TASK, job_id=f"tg-sweeps-{bucket}", delay_seconds=delay)
    except Exception:
        log.warning("sweep_task_not_queued", due_at=due_at, exc_info=True)


async def job_changed(ctx: Context, record: JobRecord) -> None:
    """A job moved: wake its sweep, if it is a trial."""
    sweep_id = sweep_of(record.request.get("metadata"))
    if sweep_id is not None:
        await wake_sweep(ctx, sweep_id)


async def requeue_overdue(ctx: Context) -> int:
    """Sweeper: queue an immediate task when sweeps are overdue; returns how many are."""
    now = time.time()
    overdue = await ctx.store.sweeps.due(now - ctx.settings.sweep_seconds, limit=1000)
    if overdue:
        bucket = math.floor(now / ctx.settings.sweep_seconds)
        await ctx.queue.submit(TASK, job_id=f"tg-sweeps-sweep-{bucket}")
    return len(overdue)
