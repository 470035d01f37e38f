"""Dataset file records and their validation reports (the upstream copies they share are
`copies`').

A record changes only through `update`, a compare-and-set that keeps in the same transaction the
set of files waiting for the upstream (scored by when the sweeper may hand one over again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

from service.store import keys
from service.store.base import Repository, compare_and_set

FileStatus = Literal["uploaded", "processed", "error", "deleted"]
Change = Callable[["FileRecord"], "FileRecord | None"]


class FileRecord(BaseModel):
    id: str
    org_id: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    created_at: int
    status: FileStatus = "uploaded"
    status_details: str | None = None
    upstream_id: str | None = None
    upload_attempts: int = 0  # upload calls made
    upload_failures: int = 0  # hand-offs in a row that met a passing upstream failure
    last_used_at: int | None = None
    bytes_deleted_at: int | None = None
    summary: dict[str, object] = {}


class FileRepository(Repository):
    async def create(self, record: FileRecord, report_json: str, retry_at: float) -> None:
        """Store a new file; one waiting for the upstream (`uploaded`) the sweeper hands over
        again from `retry_at` should the first hand-off be lost."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.file(record.id), record.model_dump_json())
            pipe.set(keys.file_report(record.id), report_json)
            pipe.zadd(keys.org_files(record.org_id), {record.id: time.time()})
            if record.status == "uploaded":
                pipe.zadd(keys.pending_uploads(), {record.id: retry_at})
            await pipe.execute()

    async def update(
        self, file_id: str, change: Change, *, retry_at: float | None = None
    ) -> FileRecord | None:
        """Apply `change` to the current record unless it moved meanwhile, then try again;
        `change` returns None to write nothing, and the result is the record as stored (None:
        no such file). A file still waiting for the upstream is handed over again by the
        sweeper from `retry_at` (when given); any other leaves the waiting set."""

        def write(pipe: Any, old: FileRecord, new: FileRecord) -> None:
            pipe.set(keys.file(file_id), new.model_dump_json())
            if new.status != "uploaded":
                pipe.zrem(keys.pending_uploads(), file_id)
            elif retry_at is not None:
                pipe.zadd(keys.pending_uploads(), {file_id: retry_at}, xx=True)

        return await compare_and_set(
            self.redis, keys.file(file_id), FileRecord, change, write, f"File {file_id}"
        )

    async def pending_before(self, cutoff: float, limit: int = 1000) -> list[str]:
        """Ids of files still waiting for the upstream that the sweeper may hand over again
        at `cutoff`."""
        return list(
            await self.redis.zrangebyscore(keys.pending_uploads(), 0, cutoff, start=0, num=limit)
        )

    async def get(self, file_id: str) -> FileRecord | None:
        raw = await self.redis.get(keys.file(file_id))
        return FileRecord.model_validate_json(raw) if raw else None

    async def report(self, file_id: str) -> str | None:
        value: str | None = await self.redis.get(keys.file_report(file_id))
        return value

    async def list_ids(self, org_id: str) -> list[str]:
        """Oldest first."""
        return list(await self.redis.zrange(keys.org_files(org_id), 0, -1))

    async def many(self, file_ids: list[str]) -> list[FileRecord]:
        if not file_ids:
            return []
        raws = await self.redis.mget([keys.file(file_id) for file_id in file_ids])
        return [FileRecord.model_validate_json(raw) for raw in raws if raw]

    async def remove(self, record: FileRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.file(record.id), keys.file_report(record.id))
            pipe.zrem(keys.org_files(record.org_id), record.id)
            pipe.zrem(keys.pending_uploads(), record.id)
            await pipe.execute()

    async def existing(self, file_ids: list[str]) -> set[str]:
        """Those of `file_ids` that have a record."""
        if not file_ids:
            return set()
        raws = await self.redis.mget([keys.file(file_id) for file_id in file_ids])
        return {file_id for file_id, raw in zip(file_ids, raws, strict=True) if raw}

    async def acquire(self, name: str, owner: str, seconds: int) -> bool:
        return bool(await self.redis.set(keys.lock(name), owner, nx=True, ex=seconds))

    async def refresh(self, name: str, owner: str, seconds: int) -> bool:
        if await self.redis.get(keys.lock(name)) != owner:
            return False
        return bool(await self.redis.expire(keys.lock(name), seconds))

    async def locked(self, name: str) -> bool:
        return bool(await self.redis.exists(keys.lock(name)))

    async def locked_of(self, names: list[str]) -> set[str]:
        """Those of `names` whose lock someone holds (one read for them all)."""
        if not names:
            return set()
        owners = await self.redis.mget([keys.lock(name) for name in names])
        return {name for name, owner in zip(names, owners, strict=True) if owner is not None}

    async def release(self, name: str, owner: str) -> None:
        if await self.redis.get(keys.lock(name)) == owner:
            await self.redis.delete(keys.lock(name))
