"""Which stored objects no file record keeps: the layout's keys, part files, foreign keys."""

from __future__ import annotations

import pytest

from service.operations.datasets.orphans import is_orphan
from service.storage import StoredObject, dataset_key, parse_dataset_key
from service.store.datasets.files import FileRecord


def record(org_id: str = "org_a", bytes_deleted_at: int | None = None) -> FileRecord:
    return FileRecord(
        id="file-1", org_id=org_id, filename="a.jsonl", purpose="fine-tune", bytes=1,
        sha256="0" * 64, created_at=0, bytes_deleted_at=bytes_deleted_at,
    )  # fmt: skip


def test_the_layout_key_parses_back_to_its_org_and_file() -> None:
    assert parse_dataset_key(dataset_key("org_a", "file-1")) == ("org_a", "file-1")


@pytest.mark.parametrize(
    "key",
    ["notes.txt", "org_a/file-1.json", "org_a/sub/file-1.jsonl", "/file-1.jsonl", "org_a/.jsonl",
     "org_a/file-1.jsonl.bak"],
)  # fmt: skip
def test_keys_outside_the_layout_are_not_parsed(key: str) -> None:
    assert parse_dataset_key(key) is None


@pytest.mark.parametrize(
    ("key", "kept_by", "orphan"),
    [
        ("org_a/file-1.jsonl", record(), False),
        ("org_a/file-1.jsonl", None, True),
        ("org_a/file-1.jsonl", record(bytes_deleted_at=5), True),
        ("org_b/file-1.jsonl", record(), True),  # a record of another org keeps nothing here
        ("tmp/0123.part", None, True),
        ("elsewhere/notes.txt", None, False),  # not tunegate's
    ],
)
def test_an_object_is_an_orphan_unless_its_own_record_keeps_its_bytes(
    key: str, kept_by: FileRecord | None, orphan: bool
) -> None:
    assert is_orphan(StoredObject(key, 0.0), kept_by) is orphan
