"""`s3://bucket/prefix`: any S3-compatible store through obstore (the Python binding of Rust's
object_store). Endpoint, region and credentials come from the standard AWS variables
(`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...).

A write is a multipart upload fed as the bytes arrive, `PART_BYTES` a part and at most
`PARTS_IN_FLIGHT` parts in flight, so memory stays flat whatever the size; when the writer's
block fails the feed raises and obstore aborts the multipart upload, leaving nothing behind."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import anyio
import obstore
from anyio.streams.memory import MemoryObjectSendStream
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from service.storage.base import READ_CHUNK_BYTES, ObjectMissing, StoredObject

PART_BYTES = 8 << 20
PARTS_IN_FLIGHT = 2


class _Aborted(Exception):
    """Raised into the upload's feed so that obstore aborts the multipart upload."""


class _StreamWriter:
    def __init__(self, send: MemoryObjectSendStream[bytes]) -> None:
        self.send = send

    async def write(self, data: bytes, /) -> None:
        await self.send.send(data)


def _store(bucket: str, prefix: str) -> S3Store:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options = {"allow_http": True} if endpoint and endpoint.startswith("http://") else None
    extra = {"endpoint": endpoint} if endpoint else {}
    # the constructor reads AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ... itself
    return S3Store(bucket, prefix=prefix or None, client_options=options, **extra)  # type: ignore[arg-type]


class S3Storage:
    def __init__(self, url: str, bucket: str, prefix: str) -> None:
        self.url = url
        self.store = _store(bucket, prefix)

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[_StreamWriter]:
        send, receive = anyio.create_memory_object_stream[bytes](1)
        failed, done, outcome = False, anyio.Event(), list[BaseException]()

        async def feed() -> AsyncIterator[bytes]:
            async for data in receive:
                yield data
            if failed:
                raise _Aborted

        async def put() -> None:
            try:
                # shielded: a cancelled upload must still reach the abort, so it ends through
                # the feed (which the writer's block closes, whatever stops it)
                with anyio.CancelScope(shield=True):
                    await obstore.put_async(
                        self.store,
                        key,
                        feed(),
                        chunk_size=PART_BYTES,
                        max_concurrency=PARTS_IN_FLIGHT,
                    )
            except _Aborted:
                pass
            except Exception as error:  # the store's: raised in the writer's task below
                outcome.append(error)
            finally:
                receive.close()
                done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(put)
            try:
                yield _StreamWriter(send)
            except BaseException as error:
                failed = True
                outcome.append(error)
            with anyio.CancelScope(shield=True):
                await send.aclose()
                await done.wait()
        if outcome:
            raise outcome[0]

    async def read(self, key: str, chunk_bytes: int = READ_CHUNK_BYTES) -> AsyncIterator[bytes]:
        try:
            result = await obstore.get_async(self.store, key)
        except (NotFoundError, FileNotFoundError):
            raise ObjectMissing(key) from None
        async for chunk in result.stream(min_chunk_size=chunk_bytes):
            yield bytes(chunk)

    async def size(self, key: str) -> int | None:
        try:
            return int((await obstore.head_async(self.store, key))["size"])
        except (NotFoundError, FileNotFoundError):
            return None

    async def delete(self, key: str) -> None:
        with suppress(NotFoundError, FileNotFoundError):  # already gone
            await obstore.delete_async(self.store, key)

    async def list_objects(self, prefix: str = "") -> list[StoredObject]:
        found: list[StoredObject] = []
        async for batch in obstore.list(self.store, prefix or None):
            found.extend(
                StoredObject(meta["path"], meta["last_modified"].timestamp()) for meta in batch
            )
        return sorted(found, key=lambda stored: stored.key)

    async def list_keys(self, prefix: str = "") -> list[str]:
        return [stored.key for stored in await self.list_objects(prefix)]
