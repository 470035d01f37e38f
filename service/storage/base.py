"""The storage interface, the bucket layout and the URL that picks a backend.

Layout, under the URL's path or prefix: `<org_id>/<file_id>.jsonl`, one object per tunegate
file, holding the bytes as validated (redacted under `pii: redact`); the same layout as the
data folder of earlier releases, so a `TUNEGATE_DATA_DIR` folder is a `file://` store as it
is. The file backend also keeps `tmp/` for uploads in flight; the S3 backend keeps those as
multipart uploads, aborted when the upload fails. An object appears whole or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

READ_CHUNK_BYTES = 1 << 20


class ObjectMissing(LookupError):
    """No object under that key."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    modified: float  # seconds since the epoch


class ObjectWriter(Protocol):
    async def write(self, data: bytes, /) -> None: ...


class ObjectStorage(Protocol):
    url: str

    def writer(self, key: str) -> AbstractAsyncContextManager[ObjectWriter]:
        """Write an object as it streams: it exists once the block exits cleanly; an
        exception (or cancellation) in the block discards what was written."""
        ...

    def read(self, key: str, chunk_bytes: int = READ_CHUNK_BYTES) -> AsyncIterator[bytes]:
        """The object's bytes in chunks of about `chunk_bytes`; `ObjectMissing` if none."""
        ...

    async def size(self, key: str) -> int | None: ...

    async def delete(self, key: str) -> None:
        """Remove the object (already gone counts as removed)."""

    async def list_objects(self, prefix: str = "") -> list[StoredObject]:
        """Every object under `prefix`, sorted by key (the file backend's uploads in flight
        included, under `tmp/`)."""
        ...

    async def list_keys(self, prefix: str = "") -> list[str]: ...


def dataset_key(org_id: str, file_id: str) -> str:
    return f"{org_id}/{file_id}.jsonl"


def parse_dataset_key(key: str) -> tuple[str, str] | None:
    """`(org_id, file_id)` of a key in the dataset layout; None for any other key."""
    org_id, slash, name = key.partition("/")
    file_id, dot, rest = name.partition(".jsonl")
    if not (slash and dot and org_id and file_id) or rest or "/" in name:
        return None
    return org_id, file_id


def open_storage(url: str) -> ObjectStorage:
    """`file:///path` or `s3://bucket/prefix` (endpoint, region and credentials from the
    standard AWS variables)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        from service.storage.local import LocalStorage

        return LocalStorage(url, parts.path)
    if parts.scheme == "s3":
        from service.storage.s3 import S3Storage

        return S3Storage(url, parts.netloc, parts.path.strip("/"))
    raise ValueError(f"TUNEGATE_STORAGE_URL must start with file:// or s3://, not {url!r}")
