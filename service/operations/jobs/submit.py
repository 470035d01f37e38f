"""Creating the upstream job exactly once.

The upstream job carries tunegate's job id in its metadata (`tunegate_job_id`). The attempt is
counted in the record before the create call; any later attempt first looks upstream for a job
with that metadata and adopts it, so a worker that dies between the create call and recording
its answer never causes a second job. The create call itself is never retried blindly (a create
that timed out may still have made the job upstream): the runner's next attempt looks first.
Should several turn up all the same, the oldest is kept and the others are cancelled. A create
the upstream carries out only after a later attempt has looked and created again (an upstream
stalled past the timeout and the backoff) leaves a twin that no look before it could see: so a
job that took more than one attempt looks again on every poll until it ends
(`cancel_late_twins`), and cancels any upstream job of its own but the one it adopted.

The caller's metadata travels too. OpenAI allows 16 pairs and tunegate needs one, so a job with
16 keeps all of them in tunegate (shown, filterable) while the upstream copy carries the first
15 in key order. A 4xx from the create (other than 408, 409 and 429) is the upstream refusing the
job: it fails with the upstream's error. Anything else is retried by the runner, with backoff,
however long the upstream takes to come back.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from service.domain.jobs.polling import CYCLE_MIN_SECONDS
from service.domain.jobs.request import METADATA_PAIRS, JobRequest, upstream_body
from service.domain.jobs.states import is_terminal, observe
from service.errors import UpstreamRejected
from service.logging import get_logger
from service.operations.context import Context
from service.operations.jobs.records import (
    copy_upstream,
    ended,
    fail_at_gateway,
    register_model,
    saw,
)
from service.operations.tenancy.audit import record_audit
from service.operations.upstream_rate import Priority, within_budget
from service.store.datasets.files import FileRecord
from service.store.jobs import JobRecord
from service.upstream import FineTuningJob

TUNEGATE_ID_KEY = "tunegate_job_id"
FILES_GONE = {
    "code": "file_not_found",
    "message": "A file of this job was deleted before the job could start.",
    "param": "training_file",
}
T = TypeVar("T")
log = get_logger(__name__)


async def submit(ctx: Context, record: JobRecord) -> JobRecord | None:
    if record.create_attempts:
        found = await find_created(ctx, record.id)
        if found is not None:
            return await adopt(ctx, record, found)
    files = await job_file_records(ctx, record)
    if len(files) != len(job_files(record)) or not all(file.upstream_id for file in files):
        return await fail_at_gateway(ctx, record, FILES_GONE)
    counted = await ctx.store.jobs.update(record.id, _count_attempt)
    assert counted is not None
    try:
        body = upstream_request(counted, files)
        created = await _urgent(ctx, functools.partial(ctx.upstream.create_job, **body))
    except UpstreamRejected as error:
        if error.passing:
            raise
        return await fail_at_gateway(ctx, counted, _refusal(error))
    return await adopt(ctx, counted, created)


def _count_attempt(record: JobRecord) -> JobRecord:
    record.create_attempts += 1
    return record


def job_files(record: JobRecord) -> list[str]:
    """The tunegate files handed upstream: the split's two, or training (and validation)."""
    if record.split_files:
        return list(record.split_files)
    validation = record.request.get("validation_file")
    return [record.request["training_file"], *([validation] if validation else [])]


async def job_file_records(ctx: Context, record: JobRecord) -> list[FileRecord]:
    wanted = job_files(record)
    found = {file.id: file for file in await ctx.store.files.many(wanted)}
    return [found[file_id] for file_id in wanted if file_id in found]


def upstream_request(record: JobRecord, files: list[FileRecord]) -> dict[str, Any]:
    request = JobRequest.model_validate(record.request)
    body = upstream_body(request)
    body["training_file"] = files[0].upstream_id
    if len(files) > 1:
        body["validation_file"] = files[1].upstream_id
    body["seed"] = record.seed
    body["metadata"] = upstream_metadata(request.metadata, record.id)
    return body


def upstream_metadata(metadata: dict[str, str] | None, job_id: str) -> dict[str, str]:
    kept = sorted((metadata or {}).items())[: METADATA_PAIRS - 1]
    return {**dict(kept), TUNEGATE_ID_KEY: job_id}


async def find_created(ctx: Context, job_id: str) -> FineTuningJob | None:
    """The upstream job an earlier attempt created, if any (twins are cancelled)."""
    found = await _urgent(ctx, _lookup(ctx, job_id))
    mine = sorted(
        (job for job in found if (job.metadata or {}).get(TUNEGATE_ID_KEY) == job_id),
        key=lambda job: (job.created_at, job.id),
    )
    for twin in mine[1:]:
        await _cancel_twin(ctx, job_id, twin)
    return mine[0] if mine else None


async def cancel_late_twins(ctx: Context, record: JobRecord) -> None:
    """Cancel upstream jobs carrying this job's id other than the adopted one. Only a job with
    more than one create attempt can have any, so the others cost no call."""
    if record.create_attempts < 2 or record.upstream_id is None:
        return
    found = await within_budget(ctx, Priority.POLL, _lookup(ctx, record.id))
    for job in found:
        if (job.metadata or {}).get(TUNEGATE_ID_KEY) == record.id and job.id != record.upstream_id:
            await _cancel_twin(ctx, record.id, job)


async def _cancel_twin(ctx: Context, job_id: str, twin: FineTuningJob) -> None:
    """A second upstream job for one of ours (a retried create whose first answer was lost, or
    a worker whose lock lapsed mid-create): stop it, so that one job runs."""
    if twin.status not in ("succeeded", "failed", "cancelled"):
        log.warning("cancelling_twin_upstream_job", job_id=job_id, upstream_id=twin.id)
        try:
            await _urgent(ctx, functools.partial(ctx.upstream.cancel_job, twin.id))
        except UpstreamRejected as error:
            if error.passing:
                raise
            log.info("twin_ended_first", job_id=job_id, upstream_id=twin.id)  # nothing to stop


async def adopt(ctx: Context, record: JobRecord, job: FineTuningJob) -> JobRecord | None:
    """Record the upstream job as this job's, and poll it soon."""
    now = time.time()
    files = await job_file_records(ctx, record)
    aliases = {job.id: record.id, **{f.upstream_id: f.id for f in files if f.upstream_id}}
    taken: list[str] = []

    def take(current: JobRecord) -> JobRecord | None:
        if current.upstream_id is not None:
            return None
        taken.append(job.id)
        before = current.state
        current.upstream_id, current.aliases, current.failures = job.id, aliases, 0
        copy_upstream(current, job)
        current.state = observe(before, job.status)
        saw(current, before, now)
        if is_terminal(current.state):
            ended(current, now, observed=False)
        else:
            current.poll_delay = CYCLE_MIN_SECONDS
            current.due_at = None  # watched: the poll cycle makes it due when it changes
        return current

    await register_model(ctx, record, job)
    updated = await ctx.store.jobs.update(record.id, take)
    if not taken:
        if updated is not None and updated.upstream_id != job.id:
            await _cancel_twin(ctx, record.id, job)  # another worker's create won
        return updated
    await record_audit(
        ctx.store,
        principal=None,
        org_id=record.org_id,
        action="jobs.submitted",
        outcome="success",
        resource_id=record.id,
        details={"upstream_job_id": job.id, "create_attempts": record.create_attempts},
    )
    return updated


def _lookup(ctx: Context, job_id: str) -> Callable[[], Awaitable[list[FineTuningJob]]]:
    return functools.partial(ctx.upstream.list_jobs, metadata={TUNEGATE_ID_KEY: job_id})


async def _urgent(ctx: Context, call: Callable[[], Awaitable[T]]) -> T:
    return await within_budget(ctx, Priority.URGENT, call)


def _refusal(error: UpstreamRejected) -> dict[str, Any]:
    return {
        "code": error.code or "upstream_rejected",
        "message": error.message,
        "param": error.param,
    }
