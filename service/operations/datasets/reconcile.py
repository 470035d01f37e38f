"""Reconciling the upstream's files with tunegate's records, once per sweep.

Every upstream copy tunegate keeps is recorded (`store.copies`), and so is every upload before
its call. The reconciliation

- releases kept copies whose users are all gone (a crash between deleting a file and releasing
  its copy),
- deletes the copies doomed when their last user went, should their delete task have been lost
  or have failed,
- lists the upstream's fine-tuning files named by tunegate (`<file id>.jsonl`) and deletes those
  of its own files (or recorded uploads) that it does not keep: the twin a retried hand-off made
  when the first attempt landed late, or a copy uploaded for a file deleted meanwhile. A file
  still waiting for the upstream keeps its copies until it is handed over: its retry adopts the
  one that landed as its worker died, and the rest are judged after that.

Files named after ids this deployment never knew are left alone: another deployment sharing the
upstream key may own them. A file's hand-off lock is held while its copies are judged, so no
worker records a copy the reconciliation is deleting.
"""

from __future__ import annotations

import uuid

from service.errors import UpstreamError
from service.logging import get_logger
from service.operations.context import Context
from service.operations.datasets import uploads

log = get_logger(__name__)
LOCK_SECONDS = 60


async def reconcile(ctx: Context) -> dict[str, int]:
    """Sweeper: make the upstream hold exactly the copies tunegate keeps."""
    released = await release_abandoned(ctx)
    try:
        doomed = await delete_doomed(ctx)
        untracked = await delete_untracked(ctx)
    except UpstreamError as error:  # tried again at the next sweep
        log.warning("upstream_reconcile_deferred", detail=error.message)
        return {"copies_released": released}
    return {"copies_released": released, "copies_deleted": doomed, "untracked_deleted": untracked}


async def release_abandoned(ctx: Context) -> int:
    released = 0
    for org_id, sha256 in set((await ctx.store.copies.kept()).values()):
        users = await ctx.store.copies.users(org_id, sha256)
        gone = users - await ctx.store.files.existing(sorted(users)) if users else {""}
        for file_id in gone:
            await ctx.store.copies.release(org_id, sha256, file_id)
            released += 1
    return released


async def delete_doomed(ctx: Context) -> int:
    doomed = await ctx.store.copies.doomed()
    for upstream_id in doomed:
        await uploads.delete_upstream_file(ctx, upstream_id)
    return len(doomed)


async def delete_untracked(ctx: Context) -> int:
    uploading = await ctx.store.copies.uploading()
    listed = await ctx.upstream.list_files(purpose="fine-tune")
    named = [(file_id_of(f.filename), str(f.id)) for f in listed]
    ids = sorted({file_id for file_id, _ in named if file_id is not None})
    records = {record.id: record for record in await ctx.store.files.many(ids)}
    waiting = {file_id for file_id, record in records.items() if record.status == "uploaded"}
    ours = (set(records) | set(uploading)) - waiting
    deleted = 0
    for file_id, upstream_id in named:
        if file_id in ours and await _delete_if_untracked(ctx, file_id, upstream_id):
            deleted += 1
    await _settle_uploads(ctx, uploading)
    return deleted


def file_id_of(filename: str) -> str | None:
    """The tunegate file an upstream file name names, if any."""
    stem, dot, extension = filename.rpartition(".")
    if dot and extension == "jsonl" and stem.startswith("file-") and stem[5:].isalnum():
        return stem
    return None


async def _delete_if_untracked(ctx: Context, file_id: str, upstream_id: str) -> bool:
    owner = uuid.uuid4().hex
    lock = uploads.upload_lock(file_id)
    if not await ctx.store.files.acquire(lock, owner, LOCK_SECONDS):
        return False  # being handed over: judged at the next sweep
    try:
        if await ctx.store.copies.is_kept(upstream_id):
            return False
        log.info("upstream_untracked_deleted", file_id=file_id, upstream_file_id=upstream_id)
        await uploads.delete_upstream_file(ctx, upstream_id)
        return True
    finally:
        await ctx.store.files.release(lock, owner)


async def _settle_uploads(ctx: Context, uploading: dict[str, str]) -> None:
    """Forget recorded uploads of files that no longer wait for the upstream (their copies,
    if any, were judged above)."""
    for file_id in uploading:
        record = await ctx.store.files.get(file_id)
        if record is not None and record.status == "uploaded":
            continue
        owner = uuid.uuid4().hex
        if await ctx.store.files.acquire(uploads.upload_lock(file_id), owner, LOCK_SECONDS):
            await ctx.store.copies.end_upload(file_id)
            await ctx.store.files.release(uploads.upload_lock(file_id), owner)
