"""Moving fine-tuning jobs forward, in the workers.

`advance_due_jobs` (see `jobs.schedule` for when it runs) keeps up to `CONCURRENCY` due jobs
advancing at once, taking more as they fall due, until none is due or its time is up, and asks
another worker for help when more are due than it can take at once. Each job is advanced under
its own lock (`jobs.lock`), so two workers never advance the same job; one held elsewhere is left
for a moment. Advancing a job is one step for its state, repeated while it stays due at once:

    waiting_files   split off `validation_split`; wait for the files to reach the upstream
    waiting_slot    take a slot if the org has one free (`jobs.slots`), else wait in line
    submitting      create the upstream job exactly once (`jobs.submit`)
    upstream states poll it (`jobs.watch`) when the poll cycle says it changed (`jobs.cycle`)
    ended           run what is left of `jobs.finish`

A passing failure (the upstream's 429s and 5xx, timeouts) leaves the state alone and makes the
job due again after an exponential, jittered backoff: it delays a job but never fails it. An
unexpected error in one job is logged and backed off the same way without stopping the others.
"""

from __future__ import annotations

import random
import time

import anyio
import structlog

from service.domain.backoff import backoff_seconds
from service.domain.jobs.states import JobEvent, JobState, is_terminal, transition
from service.errors import UpstreamError
from service.logging import get_logger
from service.operations.context import Context
from service.operations.jobs import finish as job_finish
from service.operations.jobs import schedule as job_schedule
from service.operations.jobs import slots as job_slots
from service.operations.jobs import splits as job_splits
from service.operations.jobs import submit as job_submit
from service.operations.jobs.lock import held_jobs, job_lock
from service.operations.jobs.records import fail_at_gateway, gateway_event, saw
from service.operations.jobs.watch import poll
from service.operations.webhooks import events as webhooks
from service.store.datasets.files import FileRecord
from service.store.jobs import JobRecord

BATCH_SIZE = 200
CONCURRENCY = 32
TASK_BUDGET_SECONDS = 15.0
IDLE_SECONDS = 0.1
REST_SECONDS = 1.0
HELP_EVERY_SECONDS = 5.0
FILES_RECHECK_SECONDS = 1.0
MAX_STEPS = 8
WAITING = "Waiting at the gateway for one of the organization's job slots"
log = get_logger(__name__)
_jitter = random.Random()


async def advance_due_jobs(ctx: Context) -> int:
    """Advance jobs as they fall due, for up to `TASK_BUDGET_SECONDS` or until none is due;
    returns how many were advanced."""
    async with job_schedule.draining(ctx, TASK_BUDGET_SECONDS) as until:
        return await _drain(ctx, until)


async def sweep_jobs(ctx: Context) -> dict[str, int]:
    """The sweeper's share: jobs overdue (a lost task), jobs waiting while slots are free (a
    raised limit, a crash), callbacks whose attempt was lost."""
    return {
        "overdue_jobs": await job_schedule.requeue_overdue(ctx),
        "started_jobs": await job_slots.promote_all(ctx),
        "requeued_callbacks": await webhooks.requeue_stalled_deliveries(ctx),
    }


async def _drain(ctx: Context, until: float) -> int:
    """Keep up to `CONCURRENCY` jobs advancing at once, taking due ones as slots free up."""
    drain = _Drain(ctx)
    async with anyio.create_task_group() as group:
        while time.time() < until:
            ready = await drain.ready()
            if not ready and not drain.running:
                break
            if not ready:
                await anyio.sleep(IDLE_SECONDS)  # the running ones may make others due
                continue
            if len(ready) > CONCURRENCY:
                await drain.ask_for_help()
            for job_id in ready:
                await drain.slots.acquire()
                drain.running.add(job_id)
                group.start_soon(drain.advance, job_id)
    return drain.advanced


class _Drain:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.slots = anyio.Semaphore(CONCURRENCY)
        self.running: set[str] = set()
        self.resting: dict[str, float] = {}  # held by another worker: not before then
        self.advanced = 0
        self.helped_at = 0.0

    async def ready(self) -> list[str]:
        """Due jobs to take, most overdue first; those another worker holds (its drain took
        them) rest a moment instead of each costing a failed try for the lock."""
        now = time.time()
        self.resting = {job_id: until for job_id, until in self.resting.items() if until > now}
        wanted = BATCH_SIZE + len(self.running) + len(self.resting)
        due = await self.ctx.store.jobs.due(now, wanted)
        fresh = [i for i in due if i not in self.running and self.resting.get(i, 0.0) <= now]
        held = await held_jobs(self.ctx, fresh[:BATCH_SIZE])
        self.resting.update({job_id: now + REST_SECONDS for job_id in held})
        return [job_id for job_id in fresh[:BATCH_SIZE] if job_id not in held]

    async def advance(self, job_id: str) -> None:
        try:
            if await advance_job(self.ctx, job_id):
                self.advanced += 1
            else:
                self.resting[job_id] = time.time() + REST_SECONDS
        except Exception:
            log.error("job_advance_failed", job_id=job_id, exc_info=True)
            self.resting[job_id] = time.time() + REST_SECONDS
        finally:
            self.running.discard(job_id)
            self.slots.release()

    async def ask_for_help(self) -> None:
        if time.time() - self.helped_at >= HELP_EVERY_SECONDS:
            self.helped_at = time.time()
            await job_schedule.ask_for_help(self.ctx)


async def advance_job(ctx: Context, job_id: str) -> bool:
    """Advance one job if it is due and no other worker holds it; True if it was advanced."""
    async with job_lock(ctx, job_id) as held:
        if not held:
            return False
        record = await ctx.store.jobs.get(job_id)
        if record is None or record.due_at is None or record.due_at > time.time():
            return False
        structlog.contextvars.bind_contextvars(job_id=job_id)
        try:
            await _advance(ctx, record)
        except Exception as error:
            await _back_off(ctx, job_id, error)
        finally:
            structlog.contextvars.unbind_contextvars("job_id")
        return True


async def _advance(ctx: Context, record: JobRecord) -> None:
    current: JobRecord | None = record
    for _ in range(MAX_STEPS):
        assert current is not None
        current = await _step(ctx, current)
        if current is None or current.due_at is None or current.due_at > time.time():
            break
    if current is not None:
        await job_schedule.queue_due(ctx, current.due_at)


async def _step(ctx: Context, record: JobRecord) -> JobRecord | None:
    if is_terminal(record.state):
        return await job_finish.finish(ctx, record)
    if record.state == JobState.WAITING_FILES:
        return await _check_files(ctx, record)
    if record.state == JobState.WAITING_SLOT:
        return await _take_slot(ctx, record, just_ready=False)
    if record.state == JobState.SUBMITTING:
        return await job_submit.submit(ctx, record)
    return await poll(ctx, record)


async def _check_files(ctx: Context, record: JobRecord) -> JobRecord | None:
    if record.request.get("validation_split") is not None:
        record = await job_splits.ensure_split(ctx, record)
        if is_terminal(record.state):
            return record
        if not record.split_files:  # another worker is splitting its sweep's file
            return await _due_in(ctx, record.id, FILES_RECHECK_SECONDS)
    wanted = job_submit.job_files(record)
    found = await job_submit.job_file_records(ctx, record)
    problem = _file_problem(wanted, found)
    if problem is not None:
        return await fail_at_gateway(ctx, record, problem)
    if all(file.status == "processed" for file in found):
        return await _files_ready(ctx, record)
    return await _due_in(ctx, record.id, FILES_RECHECK_SECONDS)


def _file_problem(wanted: list[str], found: list[FileRecord]) -> dict[str, object] | None:
    params = ["training_file", "validation_file"]
    present = {file.id: file for file in found}
    for param, file_id in zip(params, wanted, strict=False):
        file = present.get(file_id)
        if file is None or file.bytes_deleted_at is not None:
            message = f"File {file_id} was deleted before the job could start."
        elif file.status == "error":
            message = f"File {file_id} could not be handed to the upstream: {file.status_details}"
        else:
            continue
        return {"code": f"invalid_{param}", "message": message, "param": param}
    return None


async def _files_ready(ctx: Context, record: JobRecord) -> JobRecord | None:
    now = time.time()
    # An org without a limit has no slot to wait for: its job starts in the same write, never
    # joining the line (in a burst of creates, every join made the line be read again). Jobs
    # left in the line by a limit since removed start with the sweeper's next pass.
    unlimited = await job_slots.limit_of(ctx, record.org_id) is None

    def ready(current: JobRecord) -> JobRecord | None:
        if current.state != JobState.WAITING_FILES:
            return None
        current.state = transition(current.state, JobEvent.FILES_READY)
        saw(current, JobState.WAITING_FILES, now)
        started = job_slots.start_at(now)(current) if unlimited else None
        return started or current

    updated = await ctx.store.jobs.update(record.id, ready)
    if updated is None or updated.state != JobState.WAITING_SLOT:
        return updated
    return await _take_slot(ctx, updated, just_ready=True)


async def _take_slot(ctx: Context, record: JobRecord, *, just_ready: bool) -> JobRecord | None:
    started = await job_slots.promote_org(ctx, record.org_id)
    mine = [job for job in started if job.id == record.id]
    if mine:
        return mine[0]
    said = [gateway_event(WAITING)] if just_ready else []
    return await ctx.store.jobs.update(record.id, _wait_in_line, events=said)


def _wait_in_line(record: JobRecord) -> JobRecord:
    if record.state == JobState.WAITING_SLOT:
        record.due_at = None  # a freed slot starts it (`jobs.slots`), not the clock
    return record


async def _due_in(ctx: Context, job_id: str, seconds: float) -> JobRecord | None:
    def later(current: JobRecord) -> JobRecord:
        current.due_at = time.time() + seconds
        return current

    return await ctx.store.jobs.update(job_id, later)


async def _back_off(ctx: Context, job_id: str, error: Exception) -> None:
    """Try again later; the state is left as it was."""
    upstream = isinstance(error, UpstreamError)
    log_error = log.warning if upstream else log.error
    log_error(
        "job_step_failed", error=type(error).__name__, detail=str(error), exc_info=not upstream
    )
    retry_after = error.retry_after if isinstance(error, UpstreamError) else 0.0

    def later(current: JobRecord) -> JobRecord:
        current.failures += 1
        current.due_at = time.time() + backoff_seconds(current.failures, _jitter, retry_after)
        return current

    updated = await ctx.store.jobs.update(job_id, later)
    if updated is not None:
        await job_schedule.queue_due(ctx, updated.due_at)
