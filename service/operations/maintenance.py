"""The sweeper: one run per interval, cluster-wide, that repairs what crashes leave behind and
applies retention.

It re-queues dataset hand-offs that no worker holds (a worker killed mid-upload lets its lock
lapse), hands overdue fine-tuning jobs and lost callback attempts back to the workers
(`jobs.runner.sweep_jobs`), wakes hyperparameter sweeps whose wake-up was lost
(`sweeps.schedule.requeue_overdue`), deletes dataset bytes past the org's
`dataset_retention_days`, makes the upstream hold exactly the dataset copies tunegate keeps
(`datasets.reconcile.reconcile`), removes stored objects no file record keeps (hourly,
`datasets.orphans`), and trims audit records older than `TUNEGATE_AUDIT_RETENTION_DAYS`
(each trim itself audited, in the stream it trimmed).
Every worker process ticks once per interval; the first to claim the interval's tick in Redis
queues the sweep. This does not depend on RQ's scheduler, whose lock a crashed worker holds
for a minute.
"""

from __future__ import annotations

import time

from service.operations.context import Context
from service.operations.datasets import orphans, uploads
from service.operations.datasets import reconcile as upstream_files
from service.operations.evals import runner as eval_runner
from service.operations.jobs import runner as job_runner
from service.operations.sweeps import schedule as sweep_schedule
from service.operations.tenancy.audit import record_audit
from service.store.datasets.files import FileRecord

DAY_SECONDS = 86_400


def interval_bucket(interval: float, now: float | None = None) -> int:
    return int((time.time() if now is None else now) // interval)


async def tick(ctx: Context) -> bool:
    """Queue this interval's sweep unless another worker already did."""
    interval = ctx.settings.sweep_seconds
    bucket = interval_bucket(interval)
    if not await ctx.store.files.acquire(f"sweep:{bucket}", "tick", max(1, round(interval * 3))):
        return False
    await ctx.queue.submit("sweep", job_id=f"tg-sweep-{bucket}")
    return True


async def sweep(ctx: Context) -> dict[str, int]:
    requeued = await requeue_stalled_uploads(ctx)
    expired = await apply_retention(ctx)
    jobs = await job_runner.sweep_jobs(ctx)
    sweeps = await sweep_schedule.requeue_overdue(ctx)
    eval_runs = await eval_runner.requeue_stale(ctx)
    copies = await upstream_files.reconcile(ctx)
    orphaned = await orphans.reclaim_when_due(ctx)
    trimmed = await trim_audit(ctx)
    return {
        "requeued_uploads": requeued,
        "retention_deleted": expired,
        **jobs,
        "overdue_sweeps": sweeps,
        "stale_eval_runs": eval_runs,
        **copies,
        "orphan_objects_deleted": orphaned,
        "audit_trimmed": trimmed,
    }


async def requeue_stalled_uploads(ctx: Context) -> int:
    count = 0
    for file_id in await ctx.store.files.pending_before(time.time()):
        if await ctx.store.files.locked(uploads.upload_lock(file_id)):
            continue
        bucket = int(time.time() // ctx.settings.sweep_seconds)
        await uploads.queue_upload(ctx, file_id, job_id=f"upload-{file_id}-s{bucket}")
        count += 1
    return count


async def apply_retention(ctx: Context, now: float | None = None) -> int:
    current = time.time() if now is None else now
    deleted = 0
    for org in await ctx.store.tenancy.list_orgs():
        days = org.policy.dataset_retention_days
        if days is None:
            continue
        ids = await ctx.store.files.list_ids(org.id)
        for record in await ctx.store.files.many(ids):
            if record.bytes_deleted_at is None and _expired(record, days, current):
                await _delete_bytes(ctx, record, days)
                deleted += 1
    return deleted


async def trim_audit(ctx: Context, now: float | None = None) -> int:
    """Drop audit records past the retention; a record of each trim goes to the trimmed org's
    stream (to the gateway's for a stream of no org: one a caller named before ids were
    checked)."""
    days = ctx.settings.audit_retention_days
    cutoff = (time.time() if now is None else now) - days * DAY_SECONDS
    removed = await ctx.store.audit.trim_before(cutoff)
    orgs = {org.id for org in await ctx.store.tenancy.list_orgs()} if removed else set()
    for org_id, count in removed.items():
        details: dict[str, object] = {"retention_days": days, "removed": count}
        if org_id is not None and org_id not in orgs:
            org_id, details = None, {**details, "stream": org_id}
        await record_audit(
            ctx.store,
            principal=None,
            org_id=org_id,
            action="audit.trimmed",
            outcome="success",
            details=details,
        )
    return sum(removed.values())


def _expired(record: FileRecord, days: int, now: float) -> bool:
    last_use = record.last_used_at or record.created_at
    return now - last_use > days * DAY_SECONDS


def _bytes_deleted(record: FileRecord) -> FileRecord:
    record.bytes_deleted_at, record.upstream_id = int(time.time()), None
    return record


async def _delete_bytes(ctx: Context, record: FileRecord, days: int) -> None:
    await ctx.storage.delete(uploads.stored_key(record.org_id, record.id))
    await uploads.release_upstream_copy(ctx, record)
    await ctx.store.files.update(record.id, _bytes_deleted)
    await record_audit(
        ctx.store,
        principal=None,
        org_id=record.org_id,
        action="files.retention_deleted",
        outcome="success",
        resource_id=record.id,
        details={"retention_days": days},
    )
