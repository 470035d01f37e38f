"""Handing a stored dataset to the upstream, exactly once per org and content.

Intent is recorded (`upload_attempts`, and `store.copies.begin_upload`) before the upload call;
a retry first looks for its own copy upstream (by the name tunegate gives it) and uploads again
only when there is none. Identical bytes within an org share one upstream copy, claimed and
released atomically (`store.copies`) and deleted when its last tunegate file goes. A per-file
lock and a per-content lock, renewed while the upload runs, keep two workers from racing (a file
whose twin is being handed over waits for it, then claims its copy); they lapse two sweep
intervals after their worker dies, and the sweeper re-queues the hand-off. Whatever still slips
through (a late-landing twin of a retried upload, a crash between two steps) the sweeper's
reconciliation deletes (`datasets.reconcile`).

A passing failure (a 429, a 5xx, a timeout, a lost connection) delays the hand-off, never fails
the file: it is tried again after an exponential backoff (`domain.backoff`), however long the
upstream takes to come back, and `status_details` says why it waits. Only the upstream refusing
the file (another 4xx) ends it in `error`.
"""

from __future__ import annotations

import functools
import random
import time
import uuid

import anyio

from service.domain.backoff import backoff_seconds
from service.errors import UpstreamError, UpstreamRejected
from service.logging import get_logger
from service.operations.context import Context
from service.operations.tenancy.audit import record_audit
from service.operations.upstream_rate import Priority, within_budget
from service.storage import dataset_key
from service.store.datasets.files import FileRecord

log = get_logger(__name__)
_jitter = random.Random()


def stored_key(org_id: str, file_id: str) -> str:
    """Where the file's validated bytes are stored (`service.storage`'s layout)."""
    return dataset_key(org_id, file_id)


async def upload_stored(ctx: Context, record: FileRecord) -> str:
    """Stream the stored bytes to the upstream, no local copy; the upstream's file id."""
    key = stored_key(record.org_id, record.id)
    size = await ctx.storage.size(key)
    if size is None:
        raise UpstreamRejected(f"The bytes of {record.id} are gone from storage.", status=404)
    send = functools.partial(
        ctx.upstream.upload_stream, lambda: ctx.storage.read(key), size, upstream_filename(record)
    )
    uploaded = await within_budget(ctx, Priority.URGENT, send)  # a token per hand-off
    return str(uploaded.id)


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
    """This file no longer uses the org's copy of its bytes: delete the copy upstream when it
    was the last user."""
    if record.status == "processed" and record.upstream_id is None:
        return  # never handed over (an evals file) or already released by retention
    last = await ctx.store.copies.release(record.org_id, record.sha256, record.id)
    if last is not None:
        await queue_upstream_delete(ctx, last)


async def queue_upstream_delete(ctx: Context, upstream_id: str) -> None:
    await ctx.queue.submit(
        "delete_upstream_file", upstream_id, job_id=f"delete-upstream-{upstream_id}", retries=4
    )


async def upload_to_upstream(ctx: Context, file_id: str) -> str:
    """Worker: make sure the upstream has this file, exactly once. Returns the outcome."""
    owner = uuid.uuid4().hex
    seconds = lock_seconds(ctx)
    if not await ctx.store.files.acquire(upload_lock(file_id), owner, seconds):
        return "busy"
    held = [upload_lock(file_id)]
    try:
        record = await ctx.store.files.get(file_id)
        if record is None or record.status != "uploaded":
            return "nothing to do"
        if not await ctx.store.files.acquire(copy_lock(record), owner, seconds):
            await _wait_for_twin(ctx, record)
            return "waiting for a twin"
        held.append(copy_lock(record))
        async with anyio.create_task_group() as group:
            group.start_soon(_keep_locks, ctx, held, owner, seconds)
            outcome = await _hand_upstream(ctx, record)
            group.cancel_scope.cancel()
        return outcome
    finally:
        with anyio.CancelScope(shield=True):
            for lock in reversed(held):
                await ctx.store.files.release(lock, owner)


def upload_lock(file_id: str) -> str:
    return f"upload:{file_id}"


def copy_lock(record: FileRecord) -> str:
    """Held while a file of the org with these bytes is handed over."""
    return f"upload-copy:{record.org_id}:{record.sha256}"


async def _wait_for_twin(ctx: Context, record: FileRecord) -> None:
    """Another file with the same bytes is being handed over: try again shortly and claim
    its copy then (the sweeper re-queues the file should this be lost)."""
    delay = 0.5 + _jitter.random()
    job_id = f"upload-{record.id}-w{uuid.uuid4().hex[:8]}"
    await queue_upload(ctx, record.id, job_id=job_id, delay_seconds=delay)


def lock_seconds(ctx: Context) -> int:
    """How long a hand-off lock outlives a dead worker: two sweep intervals (at least 10 s)."""
    return max(10, round(2 * ctx.settings.sweep_seconds))


async def _keep_locks(ctx: Context, locks: list[str], owner: str, seconds: int) -> None:
    """Hold the locks while this worker lives; they lapse soon after the worker dies."""
    while True:
        await anyio.sleep(seconds / 3)
        for lock in locks:
            await ctx.store.files.refresh(lock, owner, seconds)


async def _hand_upstream(ctx: Context, record: FileRecord) -> str:
    try:
        upstream_id = await _existing_copy(ctx, record)
        if upstream_id is None:
            if await ctx.store.files.update(record.id, _count_attempt) is None:
                return "deleted meanwhile"
            await ctx.store.copies.begin_upload(record.id, record.org_id)
            upstream_id = await _record_copy(ctx, record, await upload_stored(ctx, record))
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
    """An upstream copy to use instead of uploading, claimed for this file: the org's copy of
    the same bytes, or this file's own copy from an earlier attempt that died before recording
    it."""
    shared = await ctx.store.copies.claim(record.org_id, record.sha256, record.id)
    if shared is not None:
        try:
            await ctx.upstream.retrieve_file(shared)
            return shared
        except UpstreamRejected as error:
            if error.status != 404:
                raise
            await ctx.store.copies.forget(record.org_id, record.sha256, shared)
    if record.upload_attempts == 0:
        return None
    found = await ctx.upstream.find_file(upstream_filename(record))
    return await _record_copy(ctx, record, str(found.id)) if found is not None else None


async def _record_copy(ctx: Context, record: FileRecord, upstream_id: str) -> str:
    """Keep `upstream_id` as the org's copy of these bytes, or, should the org have one
    already, use that and delete this surplus upload."""
    kept = await ctx.store.copies.record(record.org_id, record.sha256, record.id, upstream_id)
    if kept != upstream_id:
        await ctx.store.copies.doom(upstream_id)
        await queue_upstream_delete(ctx, upstream_id)
    return kept


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
    """Delete a copy tunegate no longer uses (already gone counts as deleted)."""
    try:
        await ctx.upstream.delete_file(upstream_id)
    except UpstreamRejected as error:
        if error.status != 404:
            raise
    await ctx.store.copies.deleted(upstream_id)
