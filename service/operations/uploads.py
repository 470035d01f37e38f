"""Handing a stored dataset to the upstream, exactly once per org and content.

Intent is recorded (`upload_attempts`) before the upload call; a retry first looks for its own
copy upstream (by the name tunegate gives it) and uploads again only when there is none. Identical
bytes within an org reuse one upstream copy, which is deleted when its last tunegate file goes.
A per-file lock, renewed while the upload runs, keeps two workers from racing; it lapses two
sweep intervals after its worker dies, and the sweeper re-queues the hand-off.

A passing failure (a 429, a 5xx, a timeout, a lost connection) delays the hand-off, never fails
the file: it is tried again after an exponential backoff (`domain.backoff`), however long the
upstream takes to come back, and `status_details` says why it waits. Only the upstream refusing
the file (another 4xx) ends it in `error`.
"""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import anyio

from service.domain.backoff import backoff_seconds
from service.errors import UpstreamError, UpstreamRejected
from service.logging import get_logger
from service.operations.audit import record_audit
from service.operations.context import Context
from service.store.files import FileRecord

log = get_logger(__name__)
_jitter = random.Random()


def stored_path(ctx: Context, record: FileRecord) -> Path:
    return ctx.settings.data_dir / record.org_id / f"{record.id}.jsonl"


async def queue_upload(
    ctx: Context, file_id: str, *, job_id: str, delay_seconds: float | None = None
) -> str:
    return await ctx.queue.submit(
        "upload_file", file_id, job_id=job_id, delay_seconds=delay_seconds
    )


def sweeper_retry_at(ctx: Context, seconds: float = 0.0) -> float:
    """When the sweeper may hand a file over again, should the hand-off queued for `seconds`
    from now be lost: one sweep interval after that."""
    return time.time() + seconds + ctx.settings.sweep_seconds


async def release_upstream_copy(ctx: Context, record: FileRecord) -> None:
    """Delete the upstream copy once no tunegate file of the org uses it any more."""
    upstream_id = record.upstream_id
    if upstream_id is None or await ctx.store.files.copy_users(record.org_id, record.sha256):
        return
    await ctx.store.files.forget_upstream_copy(record.org_id, record.sha256)
    await ctx.queue.submit(
        "delete_upstream_file", upstream_id, job_id=f"delete-upstream-{upstream_id}", retries=4
    )


async def upload_to_upstream(ctx: Context, file_id: str) -> str:
    """Worker: make sure the upstream has this file, exactly once. Returns the outcome."""
    owner = uuid.uuid4().hex
    lock = upload_lock(file_id)
    seconds = lock_seconds(ctx)
    if not await ctx.store.files.acquire(lock, owner, seconds):
        return "busy"
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_keep_lock, ctx, lock, owner, seconds)
            record = await ctx.store.files.get(file_id)
            outcome = "nothing to do"
            if record is not None and record.status == "uploaded":
                outcome = await _hand_upstream(ctx, record)
            group.cancel_scope.cancel()
        return outcome
    finally:
        with anyio.CancelScope(shield=True):
            await ctx.store.files.release(lock, owner)


def upload_lock(file_id: str) -> str:
    return f"upload:{file_id}"


def lock_seconds(ctx: Context) -> int:
    """How long a hand-off lock outlives a dead worker: two sweep intervals (at least 10 s)."""
    return max(10, round(2 * ctx.settings.sweep_seconds))


async def _keep_lock(ctx: Context, lock: str, owner: str, seconds: int) -> None:
    """Hold the lock while this worker lives; it lapses soon after the worker dies."""
    while True:
        await anyio.sleep(seconds / 3)
        await ctx.store.files.refresh(lock, owner, seconds)


async def _hand_upstream(ctx: Context, record: FileRecord) -> str:
    try:
        upstream_id = await _existing_copy(ctx, record)
        if upstream_id is None:
            if await ctx.store.files.update(record.id, _count_attempt) is None:
                return "deleted meanwhile"
            uploaded = await ctx.upstream.upload_file(
                stored_path(ctx, record), filename=upstream_filename(record)
            )
            upstream_id = str(uploaded.id)
    except UpstreamError as error:
        if isinstance(error, UpstreamRejected) and not error.passing:
            await _mark_error(ctx, record, error.message)
            return "error"
        await _retry_later(ctx, record, error)
        return "retrying"
    return await _mark_processed(ctx, record, upstream_id)


def _count_attempt(record: FileRecord) -> FileRecord:
    record.upload_attempts += 1
    return record


def upstream_filename(record: FileRecord) -> str:
    return f"{record.id}.jsonl"


async def _existing_copy(ctx: Context, record: FileRecord) -> str | None:
    """An upstream copy to use instead of uploading: the org's copy of the same bytes, or this
    file's own copy from an earlier attempt that died before recording it."""
    shared = await ctx.store.files.upstream_copy(record.org_id, record.sha256)
    if shared is not None:
        try:
            await ctx.upstream.retrieve_file(shared)
            return shared
        except UpstreamRejected as error:
            if error.status != 404:
                raise
            await ctx.store.files.forget_upstream_copy(record.org_id, record.sha256)
    if record.upload_attempts == 0:
        return None
    found = await ctx.upstream.find_file(upstream_filename(record))
    return str(found.id) if found is not None else None


async def _retry_later(ctx: Context, record: FileRecord, error: UpstreamError) -> None:
    """Hand the file over again after a backoff; the sweeper re-queues it should that be lost."""
    failures = record.upload_failures + 1
    seconds = backoff_seconds(failures, _jitter, error.retry_after)
    details = f"Waiting for the upstream ({error.message}); trying again in {seconds:.0f} s."

    def waiting(current: FileRecord) -> FileRecord | None:
        if current.status != "uploaded":
            return None
        current.upload_failures, current.status_details = failures, details
        return current

    retry_at = sweeper_retry_at(ctx, seconds)
    if await ctx.store.files.update(record.id, waiting, retry_at=retry_at) is None:
        return
    log.warning("upload_deferred", file_id=record.id, failures=failures, detail=error.message)
    job_id = f"upload-{record.id}-r{failures}"
    await queue_upload(ctx, record.id, job_id=job_id, delay_seconds=seconds)


async def _mark_processed(ctx: Context, record: FileRecord, upstream_id: str) -> str:
    marked: list[bool] = []

    def processed(current: FileRecord) -> FileRecord | None:
        if current.status != "uploaded":
            return None  # handed over by a worker whose lock had lapsed: the first one stands
        current.status, current.upstream_id, current.status_details = "processed", upstream_id, None
        marked.append(True)
        return current

    current = await ctx.store.files.update(record.id, processed)
    if current is None:  # deleted while uploading: leave no orphan upstream copy
        record.upstream_id = upstream_id
        await release_upstream_copy(ctx, record)
        return "deleted meanwhile"
    if not marked:
        return "handed over meanwhile"
    await record_audit(
        ctx.store,
        principal=None,
        org_id=current.org_id,
        action="files.processed",
        outcome="success",
        resource_id=current.id,
        details={"upstream_file_id": upstream_id, "attempts": current.upload_attempts},
    )
    return "processed"


async def _mark_error(ctx: Context, record: FileRecord, message: str) -> None:
    def refused(current: FileRecord) -> FileRecord | None:
        if current.status != "uploaded":
            return None
        current.status, current.status_details = "error", message
        return current

    if await ctx.store.files.update(record.id, refused) is None:
        return
    await record_audit(
        ctx.store,
        principal=None,
        org_id=record.org_id,
        action="files.upload_failed",
        outcome="error",
        resource_id=record.id,
        details={"message": message},
    )


async def delete_upstream_file(ctx: Context, upstream_id: str) -> None:
    try:
        await ctx.upstream.delete_file(upstream_id)
    except UpstreamRejected as error:
        if error.status != 404:
            raise
