"""What happens once a job has ended, one step at a time (`jobs.records.steps_for`):

    promote   give the freed slot to the org's next waiting job
    sync      read the last events and checkpoints (an end the list walk saw, or a job the
              caller cancelled); a caller asking for them meanwhile runs it at once
              (`jobs.watch.sync_now`)
    metrics   download the result file and keep its step metrics
    usage     the training tokens and their estimated cost, under `fine-tuning:<base model>`
    files     stamp the files' `last_used_at` (dataset retention counts from there)
    audit     `jobs.succeeded` / `jobs.failed` / `jobs.cancelled`
    evals     a succeeded job naming an `eval_id`: its eval runs on the tuned model and the base
              model (`evals.loop`; run ids derived from the job, so a repeat makes no second run)
    callback  queue the job-done callback to the org's `webhook_url`
    sweep     wake the job's sweep, if it is a trial of one

The tuned model is registered in the org's registry before the job is recorded as succeeded
(`jobs.records.register_model`), so it is routable as soon as callers see the status. The steps are
crossed off in the record together once all are done (the job stays due until then), so a worker
that dies part-way leaves the rest to the next one. Those that must not run twice are marked done
one by one meanwhile, in a set of the job's own (one command each, not a write of the record):
`usage` and `audit` write records, `evals` creates runs, `callback` queues a delivery. `sync`
crosses itself off in the write that records what it read, and the record is crossed off before
`sweep`, whose sweep must find the job finished. A step that fails for a passing reason raises
and is retried with the job's backoff; a result file the upstream cannot serve is skipped.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from service.domain.jobs.metrics import rows_from_result_file
from service.domain.jobs.states import JobState
from service.domain.pricing import UnknownModelError, training_cost
from service.domain.tenancy.audit import Outcome
from service.errors import UpstreamRejected
from service.logging import get_logger
from service.operations.budgets import training as budget_training
from service.operations.context import Context
from service.operations.evals import loop as evals_loop
from service.operations.inference.usage import NANOS
from service.operations.jobs import slots as job_slots
from service.operations.jobs import watch as job_watch
from service.operations.jobs.records import crossed_off
from service.operations.jobs.submit import job_file_records
from service.operations.sweeps import schedule as sweep_schedule
from service.operations.tenancy.audit import record_audit
from service.operations.upstream_rate import Priority, within_budget
from service.operations.webhooks import events as webhooks
from service.store.datasets.files import FileRecord
from service.store.inference.usage import UsageEntry
from service.store.jobs import JobRecord

log = get_logger(__name__)
_OUTCOMES: dict[JobState, Outcome] = {JobState.SUCCEEDED: "success", JobState.FAILED: "error"}
STAMP_SECONDS = 60  # a file's `last_used_at` moves at most this often (retention counts days)
ONCE = frozenset({"usage", "audit", "evals", "callback"})  # marked done one by one
CROSSED_OFF_BEFORE = frozenset({"sweep"})  # the record shows the job finished first
Step = Callable[[Context, JobRecord], Awaitable[JobRecord | None]]


async def finish(ctx: Context, record: JobRecord) -> JobRecord | None:
    done = await ctx.store.jobs.steps_done(record.id)
    current: JobRecord | None = record
    ran: list[str] = []
    for step in list(record.pending):
        if step not in done:
            if step in CROSSED_OFF_BEFORE and ran:
                current, ran = await ctx.store.jobs.update(record.id, crossed_off(ran)), []
            if current is None:
                return None
            current = await STEPS[step](ctx, current) or current
            if step in ONCE:
                await ctx.store.jobs.step_done(record.id, step)
        ran.append(step)
    return await ctx.store.jobs.update(record.id, crossed_off(ran))


async def _promote(ctx: Context, record: JobRecord) -> None:
    await job_slots.promote_org(ctx, record.org_id)


async def _sync(ctx: Context, record: JobRecord) -> JobRecord | None:
    return await job_watch.poll(ctx, record, cross_off=["sync"])


async def _metrics(ctx: Context, record: JobRecord) -> None:
    if not record.result_files:
        return
    try:
        read = functools.partial(ctx.upstream.file_content, record.result_files[0])
        content = await within_budget(ctx, Priority.POLL, read)
        rows = rows_from_result_file(content)
    except UpstreamRejected as error:
        log.warning("result_file_unavailable", job_id=record.id, status=error.status)
        return
    await ctx.store.jobs.put_metrics(record.id, [asdict(row) for row in rows])


async def _usage(ctx: Context, record: JobRecord) -> None:
    trained = record.trained_tokens or 0
    await budget_training.settle_job(ctx, record.budget, record.base_model, trained)
    if not trained:
        return
    try:
        cost = training_cost(record.base_model, record.trained_tokens, ctx.prices) or 0.0
    except UnknownModelError:
        cost = 0.0
    entry = UsageEntry(
        org_id=record.org_id,
        key_id=record.key_id or "",
        model=f"fine-tuning:{record.base_model}",
        day=dt.datetime.now(dt.UTC).date().isoformat(),
        prompt_tokens=0,
        completion_tokens=0,
        trained_tokens=record.trained_tokens,
        cost_nanos=round(cost * NANOS),
        requests=0,
    )
    await ctx.store.usage.record([entry], [])


async def _files(ctx: Context, record: JobRecord) -> None:
    now = int(time.time())

    def stale(file: FileRecord) -> bool:  # else stamped already: a burst of jobs on one file
        return file.last_used_at is None or file.last_used_at < now - STAMP_SECONDS

    def used(file: FileRecord) -> FileRecord | None:
        if not stale(file):
            return None
        file.last_used_at = now
        return file

    for file in await job_file_records(ctx, record):  # one read; a write only when stale
        if stale(file):
            await ctx.store.files.update(file.id, used)


async def _audit(ctx: Context, record: JobRecord) -> None:
    details = {
        "upstream_job_id": record.upstream_id,
        "fine_tuned_model": record.fine_tuned_model,
        "trained_tokens": record.trained_tokens,
        "error": record.error,
    }
    await record_audit(
        ctx.store,
        principal=None,
        org_id=record.org_id,
        action=f"jobs.{record.state.value}",
        outcome=_OUTCOMES.get(record.state, "success"),
        resource_id=record.id,
        details={name: value for name, value in details.items() if value is not None},
    )


async def _evals(ctx: Context, record: JobRecord) -> JobRecord | None:
    return await evals_loop.evaluate_job(ctx, record)


async def _callback(ctx: Context, record: JobRecord) -> None:
    await webhooks.queue_job_callback(ctx, record)


async def _sweep(ctx: Context, record: JobRecord) -> None:
    await sweep_schedule.job_changed(ctx, record)


STEPS: dict[str, Step] = {
    "promote": _promote,
    "sync": _sync,
    "metrics": _metrics,
    "usage": _usage,
    "files": _files,
    "audit": _audit,
    "evals": _evals,
    "callback": _callback,
    "sweep": _sweep,
}
