"""The poll cycle: one walk of the upstream's job list finds every watched job that changed.

Jobs the upstream holds are watched (`store.jobs.watched`, one hash read per cycle). One
worker at a time (a lease in Redis) walks `GET /fine_tuning/jobs` newest first, a page of 100 at
a time, until it has seen every watched job or passed the oldest. A listed job whose status,
model or trained tokens differ from what was recorded, or a running one whose events are older
than `EVENTS_EVERY_SECONDS`, is made due with the listed copy (`JobRecord.listed`), so the
runner's poll (`jobs.watch`) reads only its new events, and its checkpoints when it changed.
Watched jobs the walk did not find are made due without one: the poll retrieves them one by one,
the fallback. Jobs fall due in `fair_order`, so one org's thousand changes never queue ahead of
another org's first.

Timed cycles come every `cycle_seconds` (2 s, slower as the list grows) while any job is
watched; each queues the next. OpenAI's webhooks run one at once (`queue_cycle_now`), and the
sweeper restarts the timer if it was lost. Every page draws from the upstream budget at poll
priority, so creates and cancels go first.
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from collections.abc import Callable, Iterable

import anyio

from service.domain.jobs.polling import (
    CLOCK_SLACK_SECONDS,
    LIST_PAGE,
    Watched,
    cycle_seconds,
    fair_order,
    listing_mark,
    needs_poll,
)
from service.domain.jobs.states import UPSTREAM
from service.logging import get_logger
from service.operations.context import Context
from service.operations.jobs import schedule as job_schedule
from service.operations.upstream_rate import Priority, within_budget
from service.store.jobs import JobRecord
from service.upstream import FineTuningJob

TASK = "poll_jobs"
LEASE_SECONDS = 120.0
GAP_SECONDS = 1.0  # webhooks coalesce: at most one walk a second
MAX_PAGES = 200
WRITERS = 16  # records marked due at once
log = get_logger(__name__)


async def run_poll_cycle(ctx: Context, *, timed: bool) -> int:
    """Walk the list once (unless another worker is walking); returns how many jobs fell due.
    A timed cycle queues the next one while jobs are watched."""
    owner = uuid.uuid4().hex
    try:
        if not await ctx.store.jobs.claim_cycle(owner, LEASE_SECONDS):
            return 0
        try:
            return await _walk(ctx)
        finally:
            await ctx.store.jobs.end_cycle(owner, GAP_SECONDS)
    finally:
        if timed:  # also after a failed walk: the next one tries again
            with anyio.CancelScope(shield=True):
                await queue_next_cycle(ctx)


async def _walk(ctx: Context) -> int:
    watched = await ctx.store.jobs.watched()
    if not watched:
        return 0
    now = time.time()
    oldest = min(job.created_at for job in watched.values()) - CLOCK_SLACK_SECONDS
    changed: dict[str, tuple[Watched, FineTuningJob | None]] = {}
    unseen = dict(watched)
    after: str | None = None
    for _ in range(MAX_PAGES):
        walk = functools.partial(ctx.upstream.list_jobs_page, after=after, limit=LIST_PAGE)
        page, more = await within_budget(ctx, Priority.POLL, walk)
        for job in page:
            known = unseen.pop(job.id, None)
            mark = listing_mark(job.status, job.fine_tuned_model, job.trained_tokens)
            if known is not None and needs_poll(known, mark, now):
                changed[job.id] = (known, job)
        if not more or not page or not unseen or page[-1].created_at < oldest:
            break
        after = page[-1].id
    changed.update({upstream_id: (job, None) for upstream_id, job in unseen.items()})
    return await _make_due(ctx, list(changed.values()), now)


async def _make_due(
    ctx: Context, changed: Iterable[tuple[Watched, FineTuningJob | None]], now: float
) -> int:
    listed = {watched.job_id: job for watched, job in changed}
    order = fair_order(watched for watched, _ in changed)
    interval = cycle_seconds(await ctx.store.jobs.watched_count())
    limiter = anyio.CapacityLimiter(WRITERS)
    async with anyio.create_task_group() as group:
        for job_id, offset in order:
            job = listed[job_id]
            snapshot = job.model_dump(mode="json") if job is not None else None
            change = functools.partial(
                _listed, snapshot=snapshot, due_at=now + offset, interval=interval
            )
            group.start_soon(_write, ctx, limiter, job_id, change)
    if order:  # one task drains them all, taking each as it falls due
        await job_schedule.queue_now(ctx)
    return len(order)


async def _write(
    ctx: Context,
    limiter: anyio.CapacityLimiter,
    job_id: str,
    change: Callable[[JobRecord], JobRecord | None],
) -> None:
    async with limiter:
        await ctx.store.jobs.update(job_id, change)


def _listed(
    record: JobRecord, *, snapshot: dict[str, object] | None, due_at: float, interval: float
) -> JobRecord | None:
    if record.state not in UPSTREAM:
        return None
    record.listed = snapshot
    record.poll_delay = interval
    record.due_at = min(record.due_at or due_at, due_at)
    return record


async def queue_next_cycle(ctx: Context) -> None:
    """The next timed cycle, while any job is watched."""
    count = await ctx.store.jobs.watched_count()
    if count:
        await queue_cycle_at(ctx, time.time() + cycle_seconds(count))


async def queue_cycle_at(ctx: Context, at: float) -> bool:
    """Queue the timed cycle for `at`, unless one is queued for later than now already;
    True if this queued it. A cycle due now is queued as it is, not through RQ's scheduler
    (whose lock a killed worker holds for a minute)."""
    now = time.time()
    bucket = math.ceil(max(at, now))
    later = at > now
    # A cycle queued at once may start before its second is out: it claims now, not the
    # second, so that it can queue the next one.
    if not await ctx.store.jobs.claim_next_cycle(float(bucket) if later else now, now):
        return False
    delay = bucket - now if later else None
    await ctx.queue.submit(TASK, True, job_id=f"tg-poll-{bucket}", delay_seconds=delay)
    return True


async def queue_cycle_now(ctx: Context) -> None:
    """A walk at once (OpenAI's webhook said a job changed): the timer is left as it is."""
    await ctx.queue.submit(TASK, False, job_id=f"tg-poll-now-{math.floor(time.time())}")


async def ensure_timer(ctx: Context) -> bool:
    """Start the timed cycles if none is queued (a newly watched job, a lost task); True if it
    had to."""
    if not await ctx.store.jobs.watched_count():
        return False
    return await queue_cycle_at(ctx, time.time())
