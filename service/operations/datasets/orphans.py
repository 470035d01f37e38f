"""Objects in storage that no file record refers to, and their removal.

An object outlives its record when a process dies between the two steps of a write or a
delete: the bytes are placed and the record never written, or the record is removed and the
bytes never deleted (the same goes for retention, which keeps the record and drops the bytes).
The sweeper lists the storage and removes such objects once they are older than the grace
period, so an upload whose record is a moment behind its bytes is never touched. The file
backend's `tmp/` part files of uploads that died are removed the same way. Keys outside the
dataset layout and `tmp/` are not tunegate's and are left alone.
"""

from __future__ import annotations

import time

import structlog

from service.operations.context import Context
from service.storage import StoredObject, parse_dataset_key
from service.store.datasets.files import FileRecord

ORPHAN_GRACE_SECONDS = 3600
RECLAIM_INTERVAL_SECONDS = 3600  # a listing of the whole storage: once an hour is enough
TMP_PREFIX = "tmp/"
LOOKUP_BATCH = 500

log = structlog.get_logger(__name__)


def is_orphan(stored: StoredObject, record: FileRecord | None) -> bool:
    """Whether an object old enough to judge is one no record keeps."""
    if stored.key.startswith(TMP_PREFIX):
        return True
    owner = parse_dataset_key(stored.key)
    if owner is None:
        return False
    return record is None or record.org_id != owner[0] or record.bytes_deleted_at is not None


async def reclaim_when_due(ctx: Context, now: float | None = None) -> int:
    """`reclaim_orphans` once per hour across the cluster (the first sweep of the hour)."""
    current = time.time() if now is None else now
    hour = int(current // RECLAIM_INTERVAL_SECONDS)
    if not await ctx.store.files.acquire(f"orphans:{hour}", "sweep", RECLAIM_INTERVAL_SECONDS * 2):
        return 0
    return await reclaim_orphans(ctx, now=current)


async def reclaim_orphans(
    ctx: Context, now: float | None = None, grace: float = ORPHAN_GRACE_SECONDS
) -> int:
    """Delete objects older than `grace` that no record refers to; how many went."""
    cutoff = (time.time() if now is None else now) - grace
    settled = [stored for stored in await ctx.storage.list_objects() if stored.modified < cutoff]
    records = await _records_of(ctx, settled)
    removed = 0
    for stored in settled:
        owner = parse_dataset_key(stored.key)
        if is_orphan(stored, records.get(owner[1]) if owner else None):
            await ctx.storage.delete(stored.key)
            log.info("orphan_object_deleted", key=stored.key, modified=int(stored.modified))
            removed += 1
    return removed


async def _records_of(ctx: Context, objects: list[StoredObject]) -> dict[str, FileRecord]:
    ids = [owner[1] for stored in objects if (owner := parse_dataset_key(stored.key))]
    found: dict[str, FileRecord] = {}
    for start in range(0, len(ids), LOOKUP_BATCH):
        batch = ids[start : start + LOOKUP_BATCH]
        found.update((record.id, record) for record in await ctx.store.files.many(batch))
    return found
