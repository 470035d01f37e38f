"""`file://`: objects are files under one folder (0600 files in 0700 folders). An upload is
written to `tmp/` and renamed into place when it completes, so a reader never sees half of it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

import anyio

from service.storage.base import READ_CHUNK_BYTES, ObjectMissing, StoredObject


def private_dir(path: Path) -> Path:
    """`path`, created if need be, open to the gateway's user only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


class _FileWriter:
    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle

    async def write(self, data: bytes, /) -> None:
        await anyio.to_thread.run_sync(self.handle.write, data)


class LocalStorage:
    def __init__(self, url: str, root: str) -> None:
        self.url = url
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[_FileWriter]:
        target = self.path(key)
        part = await anyio.to_thread.run_sync(self._open_part)
        try:
            with os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
                yield _FileWriter(f)
            await anyio.to_thread.run_sync(self._place, part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise

    def _open_part(self) -> Path:
        private_dir(self.root)
        return private_dir(self.root / "tmp") / f"{uuid.uuid4().hex}.part"

    def _place(self, part: Path, target: Path) -> None:
        private_dir(self.root)
        for folder in reversed(target.relative_to(self.root).parents[:-1]):
            private_dir(self.root / folder)
        os.replace(part, target)

    async def read(self, key: str, chunk_bytes: int = READ_CHUNK_BYTES) -> AsyncIterator[bytes]:
        try:
            handle = await anyio.open_file(self.path(key), "rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        async with handle:
            while chunk := await handle.read(chunk_bytes):
                yield chunk

    async def size(self, key: str) -> int | None:
        try:
            return (await anyio.Path(self.path(key)).stat()).st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await anyio.Path(self.path(key)).unlink(missing_ok=True)

    async def list_objects(self, prefix: str = "") -> list[StoredObject]:
        def walk() -> list[StoredObject]:
            if not self.root.exists():
                return []
            found: list[StoredObject] = []
            for path in self.root.rglob("*"):
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    if path.is_file():
                        found.append(StoredObject(key, path.stat().st_mtime))
                except FileNotFoundError:  # deleted while walking
                    continue
            return sorted(found, key=lambda stored: stored.key)

        return await anyio.to_thread.run_sync(walk)

    async def list_keys(self, prefix: str = "") -> list[str]:
        return [stored.key for stored in await self.list_objects(prefix)]
