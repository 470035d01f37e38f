"""Where dataset bytes live: `TUNEGATE_STORAGE_URL`, with `TUNEGATE_DATA_DIR` as its alias."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config import Settings
from service.storage import dataset_key, open_storage
from service.storage.local import LocalStorage
from service.upstream import _parts


def test_without_a_storage_url_the_data_dir_is_a_file_store(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.storage == (tmp_path / "data").resolve().as_uri()
    assert settings.local_data_dir == (tmp_path / "data").resolve()
    storage = open_storage(settings.storage)
    assert isinstance(storage, LocalStorage) and storage.root == (tmp_path / "data").resolve()


def test_an_s3_url_has_no_local_data_dir() -> None:
    settings = Settings(storage_url="s3://datasets/tunegate")
    assert settings.storage == "s3://datasets/tunegate" and settings.local_data_dir is None


def test_the_storage_url_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEGATE_STORAGE_URL", "file:///srv/tunegate")
    assert Settings().local_data_dir == Path("/srv/tunegate")


@pytest.mark.parametrize("url", ["http://bucket/x", "s3://", "file://relative", "/srv/data"])
def test_a_storage_url_of_another_kind_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="storage_url"):
        Settings(storage_url=url)


def test_objects_are_keyed_by_org_and_file() -> None:
    assert dataset_key("org-1", "file-2") == "org-1/file-2.jsonl"


def test_a_stream_is_recut_into_parts_of_one_size() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for size in (3, 10, 1, 7, 2):
            yield b"x" * size

    async def collect() -> list[int]:
        return [len(part) async for part in _parts(chunks(), 5)]

    assert asyncio.run(collect()) == [5, 5, 5, 5, 3]
