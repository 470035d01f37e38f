"""`service.storage` against a real S3-compatible server (moto's, as its own process) and the
local disk, and a whole gateway keeping its datasets in the bucket."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from openai import OpenAI

from service.storage import ObjectMissing, ObjectStorage, open_storage
from service.storage.s3 import PART_BYTES
from tests.api.conftest import Gateway, gateway_settings, running_gateway
from tests.api.datasets import chat_example, chat_jsonl, with_line
from tests.s3_server import S3Server, s3_server
from tests.support import wait_for

pytestmark = pytest.mark.integration

BIG = 2 * PART_BYTES + 12345  # three parts, the last one short


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with s3_server(log) as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.env.items():
            patch.setenv(name, value)
        yield server


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStorage]:
    if request.param == "file":
        yield open_storage((tmp_path / "data").as_uri())
    else:
        server: S3Server = request.getfixturevalue("s3")
        yield open_storage(f"s3://{server.bucket}/{secrets.token_hex(4)}")


def left_behind(storage: ObjectStorage, s3: S3Server | None) -> list[str]:
    """Uploads in flight that were never finished: part files, open multipart uploads."""
    if s3 is not None and storage.url.startswith("s3://"):
        return s3.open_multipart_uploads()
    root = Path(storage.url.removeprefix("file://")) / "tmp"
    return [path.name for path in root.glob("*")] if root.exists() else []


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def blob(size: int) -> bytes:
    return (secrets.token_bytes(64) * (size // 64 + 1))[:size]


def test_an_object_is_written_as_it_streams_read_back_and_deleted(
    storage: ObjectStorage,
) -> None:
    data = blob(BIG)

    async def scenario() -> tuple[list[str], int | None, bytes, list[str], int | None]:
        async with storage.writer("org-a/file-1.jsonl") as sink:
            for start in range(0, len(data), 1 << 20):
                await sink.write(data[start : start + (1 << 20)])
        keys = await storage.list_keys()
        size = await storage.size("org-a/file-1.jsonl")
        read = b"".join([chunk async for chunk in storage.read("org-a/file-1.jsonl")])
        await storage.delete("org-a/file-1.jsonl")
        await storage.delete("org-a/file-1.jsonl")  # already gone counts as deleted
        return keys, size, read, await storage.list_keys(), await storage.size("org-a/file-1.jsonl")

    keys, size, read, after, gone = run(scenario())
    assert keys == ["org-a/file-1.jsonl"] and size == len(data) and read == data
    assert after == [] and gone is None


def test_a_missing_object_reads_as_missing(storage: ObjectStorage) -> None:
    async def read() -> bytes:
        return b"".join([chunk async for chunk in storage.read("org-a/none.jsonl")])

    with pytest.raises(ObjectMissing):
        run(read())


@pytest.mark.parametrize("how", ["error", "cancelled"])
def test_a_write_that_fails_or_is_cancelled_leaves_nothing_behind(
    storage: ObjectStorage, how: str, request: pytest.FixtureRequest
) -> None:
    s3 = request.getfixturevalue("s3") if storage.url.startswith("s3://") else None
    data = blob(BIG)

    async def scenario() -> None:
        with anyio.CancelScope() as scope:
            async with storage.writer("org-a/broken.jsonl") as sink:
                await sink.write(data)  # past the first part: a multipart upload is open
                await sink.write(data)
                if how == "cancelled":  # as a client that goes away mid-upload
                    scope.cancel()
                    await anyio.sleep(10)
                raise ValueError("invalid dataset")

    if how == "error":
        with pytest.raises(ValueError):
            run(scenario())
    else:
        run(scenario())

    assert run(storage.list_keys()) == []
    assert left_behind(storage, s3) == []


@pytest.fixture(scope="module")
def s3_gateway(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    from service.sandbox import start_in_thread
    from tests.api.conftest import FAST_SANDBOX, GATEWAY_RUN

    sandbox = start_in_thread(FAST_SANDBOX)
    workdir = tmp_path_factory.mktemp("no-data")
    settings = gateway_settings(
        workdir / "unused",
        sandbox.base_url_for(GATEWAY_RUN),
        storage_url=f"s3://{s3.bucket}/gateway",
        redis_url=None,
    )
    try:
        with running_gateway(settings, sandbox) as running:
            yield running
    finally:
        sandbox.stop()
    assert not (workdir / "unused").exists()  # no dataset byte touched the local disk


def wait_processed(sdk: OpenAI, file_id: str) -> None:
    wait_for(
        lambda: sdk.files.retrieve(file_id).status == "processed",
        timeout=60,
        what=f"{file_id} processed",
    )


def upstream_uploads_of(gateway: Gateway, data: bytes) -> int:
    sha = hashlib.sha256(data).hexdigest()
    posts = [r for r in gateway.upstream_requests("/v1/files") if r["method"] == "POST"]
    return sum(sha in orjson.dumps(r).decode() for r in posts)


def test_a_gateway_keeps_datasets_in_the_bucket_by_org_and_file(
    s3_gateway: Gateway, s3: S3Server
) -> None:
    org = s3_gateway.create_org("bucket-org", policy={"pii": "allow"})
    _, key = s3_gateway.create_key(org, "member")
    data = chat_jsonl(12, salt=secrets.token_hex(4))
    with OpenAI(base_url=f"{s3_gateway.url}/v1", api_key=key, max_retries=0) as sdk:
        created = sdk.files.create(file=("train.jsonl", data), purpose="fine-tune")
        object_key = f"gateway/{org}/{created.id}.jsonl"
        assert s3.body(object_key) == data
        assert sdk.files.content(created.id).content == data
        wait_processed(sdk, created.id)
        assert upstream_uploads_of(s3_gateway, data) == 1
        sdk.files.delete(created.id)
    assert object_key not in s3.object_keys()


def test_in_the_bucket_a_rejected_upload_leaves_nothing_and_redaction_stores_redacted_bytes(
    s3_gateway: Gateway, s3: S3Server
) -> None:
    org = s3_gateway.create_org("bucket-redact", policy={"pii": "redact"})
    _, key = s3_gateway.create_key(org, "member")
    rows = [chat_example(i) for i in range(12)]
    rows[2] = chat_example(2, "mail jane.doe@example.com")
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    broken = with_line(chat_jsonl(12), 5, b"{not json")
    with OpenAI(base_url=f"{s3_gateway.url}/v1", api_key=key, max_retries=0) as sdk:
        with pytest.raises(Exception, match="line 5"):
            sdk.files.create(file=("bad.jsonl", broken), purpose="fine-tune")
        assert s3.object_keys(f"gateway/{org}/") == []
        created = sdk.files.create(file=("pii.jsonl", data), purpose="fine-tune")
    stored = s3.body(f"gateway/{org}/{created.id}.jsonl")
    assert b"jane.doe" not in stored and b"[EMAIL]" in stored
    assert s3.open_multipart_uploads() == []


def test_objects_no_record_keeps_are_reclaimed_after_the_grace_period(
    storage: ObjectStorage, redis_url: str, tmp_path: Path
) -> None:
    from service.operations.context import Context
    from service.operations.datasets.orphans import ORPHAN_GRACE_SECONDS, reclaim_orphans
    from service.store import Store
    from service.store.datasets.files import FileRecord

    org = f"org_{secrets.token_hex(4)}"
    live, orphan, retained_out = (f"file-{secrets.token_hex(6)}" for _ in range(3))
    local_root = (
        Path(storage.url.removeprefix("file://")) if storage.url.startswith("file:") else None
    )
    settings = gateway_settings(tmp_path, "http://127.0.0.1:9/v1", storage_url=storage.url)

    def record(file_id: str, bytes_deleted_at: int | None = None) -> FileRecord:
        return FileRecord(
            id=file_id, org_id=org, filename="a.jsonl", purpose="fine-tune", bytes=3,
            sha256="0" * 64, created_at=int(time.time()), bytes_deleted_at=bytes_deleted_at,
        )  # fmt: skip

    async def scenario() -> tuple[int, list[str], int, list[str]]:
        store = Store(redis_url)
        ctx = Context(settings=settings, store=store)
        kept = [record(live), record(retained_out, bytes_deleted_at=int(time.time()))]
        try:
            for file_record in kept:
                await store.files.create(file_record, "{}", retry_at=time.time() + 3600)
            for file_id in (live, orphan, retained_out):
                async with storage.writer(f"{org}/{file_id}.jsonl") as sink:
                    await sink.write(b"{}\n")
            async with storage.writer("elsewhere/notes.txt") as sink:  # not in the layout
                await sink.write(b"not ours")
            if local_root is not None:  # the part file of an upload whose process died
                (local_root / "tmp").mkdir(exist_ok=True)
                (local_root / "tmp" / "dead.part").write_bytes(b"{")
            fresh = await reclaim_orphans(ctx)  # everything is younger than the grace period
            fresh_keys = await storage.list_keys()
            later = time.time() + ORPHAN_GRACE_SECONDS + 60
            settled = await reclaim_orphans(ctx, now=later)
            return fresh, fresh_keys, settled, await storage.list_keys()
        finally:
            for file_record in kept:
                await store.files.remove(file_record)
            await store.aclose()

    fresh, fresh_keys, settled, after = run(scenario())
    part_files = 1 if local_root is not None else 0
    assert fresh == 0 and len(fresh_keys) == 4 + part_files
    # the object with no record, the one whose bytes retention dropped, a dead upload's part
    assert settled == 2 + part_files
    assert after == sorted([f"{org}/{live}.jsonl", "elsewhere/notes.txt"])
