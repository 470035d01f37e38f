"""The per-job lock that keeps two workers from advancing the same job at once.

It is held while the worker works on the job and renewed meanwhile, so a long upstream call
keeps it; it lapses two sweep intervals after its worker dies, and the sweeper then hands the
job to another (`jobs.schedule.requeue_overdue`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio

from service.operations.context import Context
from service.operations.datasets.uploads import lock_seconds


def job_lock(ctx: Context, job_id: str) -> AbstractAsyncContextManager[bool]:
    """Yields whether this worker got the job (False: another holds it)."""
    return held_lock(ctx, _name(job_id))


async def held_jobs(ctx: Context, job_ids: list[str]) -> set[str]:
    """Those of `job_ids` another worker holds now (one read for them all)."""
    held = await ctx.store.files.locked_of([_name(job_id) for job_id in job_ids])
    return {job_id for job_id in job_ids if _name(job_id) in held}


def _name(job_id: str) -> str:
    return f"job:{job_id}"


@asynccontextmanager
async def held_lock(ctx: Context, name: str) -> AsyncIterator[bool]:
    """A lock held (and renewed) while the block runs; yields whether this worker got it."""
    owner, seconds = uuid.uuid4().hex, lock_seconds(ctx)
    if not await ctx.store.files.acquire(name, owner, seconds):
        yield False
        return
    failure: Exception | None = None
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_keep_lock, ctx, name, owner, seconds)
            try:
                yield True
            except Exception as error:  # re-raised below, outside the task group
                failure = error
            group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await ctx.store.files.release(name, owner)
    if failure is not None:
        raise failure


async def _keep_lock(ctx: Context, name: str, owner: str, seconds: int) -> None:
    while True:
        await anyio.sleep(seconds / 3)
        await ctx.store.files.refresh(name, owner, seconds)
