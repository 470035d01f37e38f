"""The poll cycle: one walk of the upstream's job list finds every watched job that changed.

Jobs the upstream holds are watched (`store.jobs.watched`, one hash read per cycle). One
worker at a time (a lease in Redis) walks `GET /fine_tuning/jobs` newest first, a page of 100 at
a time, until it has seen every watched job or passed the oldest. A listed job whose status,
model or trained tokens differ from what was recorded has its new status recorded by the walk
itself, an end included (a succeeded job's model is registered first, so it is routable as soon
as callers see the status), so callers see it one walk after the upstream. It is then made due
with the listed copy (`JobRecord.listed`): the runner's poll (`jobs.watch`) reads only its new
events; an end's last events and checkpoints are its first finishing step (`sync`), which a
caller who asks for them runs at once (`jobs.watch.sync_now`). A running job whose events are
older than `EVENTS_EVERY_SECONDS` is made due the same way. Watched jobs the walk did not find
are made due without one: the poll retrieves them one by one, the fallback. Jobs fall due in
`fair_order`, so one org's thousand changes never queue ahead of another org's first. A job
left unchanged costs no write and no call of its own.

The walks come on the clock (`run_timed_cycles`, every worker process's housekeeping): every
`cycle_seconds` (2 s, slower as the list grows), on the multiples of that interval, the first
process to claim the tick walks. No task is queued for them, so they keep their interval
however busy the workers are. OpenAI's webhooks run one at once (`queue_cycle_now`). Every page
draws from the upstream budget at poll priority, so creates and cancels go first (the walk asks
for its expected pages' tokens together).
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

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
from service.domain.jobs.states import UPSTREAM, is_terminal, observe
from service.errors import UpstreamError
from service.logging import get_logger
from service.operations.context import Context
from service.operations.jobs import schedule as job_schedule
from service.operations.jobs.records import copy_upstream, ended, register_model, saw
from service.operations.upstream_rate import Priority, within_budget
from service.store.jobs import JobRecord
from service.upstream import FineTuningJob

TASK = "poll_jobs"
LEASE_SECONDS = 120.0
GAP_SECONDS = 1.0  # webhooks coalesce: at most one walk a second
CLAIM_TRIES = 6  # a timed walk waits this many quarter seconds for a webhook's walk's gap
MAX_PAGES = 200
WRITERS = 4  # batches of records written at once
UPDATE_BATCH = 32  # records per transaction
RETRY_SECONDS = 5.0  # a timed loop that failed (Redis away) tries again after this
log = get_logger(__name__)


class Changed(NamedTuple):
    """A watched job the walk must act on: as listed (None: not found), and when it was read."""

    watched: Watched
    job: FineTuningJob | None
    seen_at: float


async def run_poll_cycle(
    ctx: Context, *, claim_tries: int = 1, gap_seconds: float = GAP_SECONDS
) -> int:
    """Walk the list once (unless another worker is walking); returns how many jobs fell due.
    No other walk starts for `gap_seconds` after it (webhooks' walks coalesce; the timed walks
    keep none, so a shorter interval is not held up by it)."""
    owner = uuid.uuid4().hex
    for attempt in range(claim_tries):
        if await ctx.store.jobs.claim_cycle(owner, LEASE_SECONDS):
            break
        if attempt + 1 == claim_tries:
            return 0
        await anyio.sleep(GAP_SECONDS / 4)
    try:
        return await _walk(ctx)
    finally:
        await ctx.store.jobs.end_cycle(owner, gap_seconds)


async def run_timed_cycles(ctx: Context, stopping: Callable[[], bool]) -> None:
    """Walk every `cycle_seconds`, on its multiples, until `stopping()`: every worker process
    runs this loop, and the first to claim a tick walks."""
    while not stopping():
        try:
            interval = cycle_seconds(await ctx.store.jobs.watched_count())
            await anyio.sleep(interval - time.time() % interval)
            tick = math.floor(time.time() / interval + 0.5)
            if stopping() or not await ctx.store.jobs.claim_cycle_tick(tick, interval):
                continue
            if await ctx.store.jobs.watched_count():
                await run_poll_cycle(ctx, claim_tries=CLAIM_TRIES, gap_seconds=0.0)
        except Exception:
            if stopping():  # shutting down: Redis may have gone first
                return
            log.warning("poll_cycle_failed", exc_info=True)
            await anyio.sleep(RETRY_SECONDS)


async def _walk(ctx: Context) -> int:
    watched = await ctx.store.jobs.watched()
    if not watched:
        return 0
    now = time.time()
    oldest = min(job.created_at for job in watched.values()) - CLOCK_SLACK_SECONDS
    listed: dict[str, tuple[Watched, dict[str, Any], float]] = {}
    unseen = dict(watched)
    after: str | None = None
    pages = -(-len(watched) // LIST_PAGE)  # the walk's length if no job was created since
    for index in range(MAX_PAGES):
        walk = functools.partial(ctx.upstream.list_jobs_page, after=after, limit=LIST_PAGE)
        page, more = await within_budget(ctx, Priority.POLL, walk, ahead=pages - index)
        seen_at = time.time()  # when the gateway learnt what this page says
        for item in page:
            known = unseen.pop(str(item["id"]), None)
            if known is None:
                continue
            model, tokens = item.get("fine_tuned_model"), item.get("trained_tokens")
            if needs_poll(known, listing_mark(item.get("status"), model, tokens), now):
                listed[str(item["id"])] = (known, item, seen_at)
        if not more or not page or not unseen or int(page[-1]["created_at"]) < oldest:
            break
        after = str(page[-1]["id"])
    # built (as the SDK builds them, leniently) once every page is read: building a burst's
    # thousand jobs page by page would read the last pages later than the walk before did
    changed = [
        Changed(known, FineTuningJob.construct(**item), at) for known, item, at in listed.values()
    ]
    changed += [Changed(job, None, now) for job in unseen.values()]
    return await _make_due(ctx, changed, len(watched), read_at=now)


async def _make_due(
    ctx: Context,
    changed: Iterable[Changed],
    watched: int,
    *,
    read_at: float,
) -> int:
    listed = {change.watched.job_id: change for change in changed}
    order = fair_order(change.watched for change in changed)
    interval = cycle_seconds(watched)
    limiter = anyio.CapacityLimiter(WRITERS)
    now = time.time()
    batches = [order[i : i + UPDATE_BATCH] for i in range(0, len(order), UPDATE_BATCH)]
    async with anyio.create_task_group() as group:
        for batch in batches:  # fair order kept: the batches start in turn
            changes = {
                job_id: functools.partial(
                    _listed,
                    job=listed[job_id].job,
                    due_at=now + offset,
                    interval=interval,
                    seen_at=listed[job_id].seen_at,
                    read_at=read_at,
                )
                for job_id, offset in batch
            }
            group.start_soon(_write, ctx, limiter, listed, changes)
    if order:  # one task drains them all, taking each as it falls due
        await job_schedule.queue_now(ctx)
    return len(order)


async def _write(
    ctx: Context,
    limiter: anyio.CapacityLimiter,
    listed: dict[str, Changed],
    changes: dict[str, Callable[[JobRecord], JobRecord | None]],
) -> None:
    async with limiter:
        for job_id in changes:
            job = listed[job_id].job
            succeeded = job is not None and job.status == "succeeded"
            if succeeded and (current := await ctx.store.jobs.get(job_id)) is not None:
                assert job is not None
                await register_model(ctx, current, job)  # before callers see `succeeded`
        await ctx.store.jobs.update_many(changes)


def _listed(
    record: JobRecord,
    *,
    job: FineTuningJob | None,
    due_at: float,
    interval: float,
    seen_at: float,
    read_at: float,
) -> JobRecord | None:
    if record.state not in UPSTREAM:
        return None
    if record.controlled_at is not None and read_at < record.controlled_at:
        job = None  # paused, resumed or cancelled since the list was read: the poll retrieves it
    record.listed = job.model_dump(mode="json") if job is not None else None
    record.poll_delay = interval
    record.due_at = min(record.due_at or due_at, due_at)
    if job is not None:
        observe_listed(record, job, seen_at)
    return record


def observe_listed(record: JobRecord, job: FineTuningJob, now: float) -> None:
    """Record a new status at once; the runner's poll adds the events. An end starts the
    finishing steps, the first of which reads the last events and checkpoints (`sync`). A
    status the state machine refuses is the poll's to handle."""
    before = record.state
    try:
        after = observe(before, job.status)
    except UpstreamError:
        return
    copy_upstream(record, job)
    record.state = after
    saw(record, before, now)
    if is_terminal(after):
        ended(record, now, observed=False)


async def queue_cycle_now(ctx: Context) -> None:
    """A walk at once (OpenAI's webhook said a job changed); the timed walks go on as they are."""
    await ctx.queue.submit(TASK, job_id=f"tg-poll-now-{math.floor(time.time())}")
