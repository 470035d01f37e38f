"""The org's `max_concurrent_jobs` slots: jobs past the limit wait at the gateway, first come
first served, and start as slots free up.

A job holds a slot from the moment it is handed to the upstream until it ends (paused ones keep
theirs, so a resume never waits). Slots are given out by the store atomically, to the heads of
the org's FIFO, whenever a job becomes ready, a job ends, or the sweeper passes (a raised limit).
"""

from __future__ import annotations

import time

from service.domain.jobs.states import JobEvent, JobState, transition
from service.operations.context import Context
from service.operations.jobs import records as job_records
from service.operations.jobs import schedule as job_schedule
from service.store.jobs import PROMOTE_BATCH, Change, JobRecord


async def limit_of(ctx: Context, org_id: str) -> int | None:
    """The org's `max_concurrent_jobs` (None: no limit)."""
    org = await ctx.store.tenancy.get_org(org_id)
    return org.policy.max_concurrent_jobs if org is not None else None


async def promote_org(ctx: Context, org_id: str) -> list[JobRecord]:
    """Start as many of the org's waiting jobs as its free slots allow."""
    limit = await limit_of(ctx, org_id)
    started: list[JobRecord] = []
    while True:  # a batch at a time (`store.jobs.promote`), until the line or the slots end
        batch = await ctx.store.jobs.promote(org_id, limit, start_at(time.time()))
        for record in batch:
            await job_schedule.queue_due(ctx, record.due_at)
        started += batch
        if len(batch) < PROMOTE_BATCH:
            return started


async def promote_all(ctx: Context) -> int:
    """Sweeper: start whatever waits while slots are free (a limit raised, a crash)."""
    started = 0
    for org in await ctx.store.tenancy.list_orgs():
        if await ctx.store.jobs.waiting_count(org.id):
            started += len(await promote_org(ctx, org.id))
    return started


def start_at(now: float) -> Change:
    """The change that starts a job waiting for a slot (None for any other)."""

    def start(record: JobRecord) -> JobRecord | None:
        if record.state != JobState.WAITING_SLOT:
            return None
        before = record.state
        record.state = transition(record.state, JobEvent.SLOT_ACQUIRED)
        record.due_at = now
        job_records.saw(record, before, now)
        return record

    return start
