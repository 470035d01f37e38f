"""`tunegate admin reclaim-orphans`, the operator's way to remove now what the hourly reclaim
would: objects past the grace period that no file record in the real Redis keeps."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.storage import dataset_key
from service.store import Store
from service.store.datasets.files import FileRecord
from tests.support import ROOT

pytestmark = pytest.mark.integration
HOURS_AGO = time.time() - 2 * 3600


def admin(redis_url: str, storage: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "TUNEGATE_REDIS_NAMESPACE": "",
        "TUNEGATE_STORAGE_URL": storage.as_uri(),
        "TUNEGATE_LOG_LEVEL": "info",
        "TUNEGATE_LOG_FORMAT": "json",
    }
    command = [sys.executable, "-m", "service.cli", "admin", "reclaim-orphans", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def place(storage: Path, key: str, modified: float) -> Path:
    path = storage / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"{}\n")
    os.utime(path, (modified, modified))
    return path


def test_the_operator_command_deletes_old_unrecorded_objects_only(
    redis_url: str, tmp_path: Path
) -> None:
    storage = tmp_path / "data"
    org = f"org_{secrets.token_hex(4)}"
    recorded, lost, fresh = (f"file-{secrets.token_hex(6)}" for _ in range(3))
    record = FileRecord(
        id=recorded, org_id=org, filename="a.jsonl", purpose="fine-tune", bytes=3,
        sha256="0" * 64, created_at=int(HOURS_AGO),
    )  # fmt: skip
    kept = place(storage, dataset_key(org, recorded), HOURS_AGO)
    gone = place(storage, dataset_key(org, lost), HOURS_AGO)
    young = place(storage, dataset_key(org, fresh), time.time())

    async def with_store(write: bool) -> None:
        store = Store(redis_url)
        try:
            if write:
                await store.files.create(record, "{}", retry_at=time.time() + 3600)
            else:
                await store.files.remove(record)
        finally:
            await store.aclose()

    asyncio.run(with_store(write=True))
    try:
        refused = admin(redis_url, storage, "--grace-seconds", "5")
        assert refused.returncode == 2 and "at least 600 seconds" in refused.stderr
        assert gone.exists()
        done = admin(redis_url, storage)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"orphan_objects_deleted": 1}
        assert kept.exists() and young.exists() and not gone.exists()
        logged = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
        deleted = [entry["key"] for entry in logged if entry["event"] == "orphan_object_deleted"]
        assert deleted == [dataset_key(org, lost)]
    finally:
        asyncio.run(with_store(write=False))
