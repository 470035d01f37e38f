"""Files and Uploads APIs through the SDK."""

from __future__ import annotations

import hashlib

import openai
import pytest
from openai import OpenAI
from sandbox_helpers import chat_lines, upload


def test_file_round_trip(client: OpenAI) -> None:
    content = chat_lines(3)
    created = client.files.create(file=("data.jsonl", content), purpose="fine-tune")
    assert created.id.startswith("file-") and created.object == "file"
    assert created.bytes == len(content) and created.filename == "data.jsonl"
    assert client.files.retrieve(created.id).id == created.id
    assert client.files.content(created.id).content == content

    assert client.files.delete(created.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_fine_tune_files_must_be_jsonl(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("data.csv", b"a,b\n"), purpose="fine-tune")
    assert "jsonl" in caught.value.message
    assert client.files.create(file=("notes.txt", b"hi"), purpose="assistants").bytes == 2


def test_list_filters_orders_and_pages(client: OpenAI) -> None:
    ids = [upload(client, chat_lines(1), f"f{i}.jsonl") for i in range(5)]
    client.files.create(file=("other.txt", b"x"), purpose="assistants")

    first = client.files.list(purpose="fine-tune", limit=2, order="asc")
    assert [f.id for f in first.data] == ids[:2] and first.has_more is True
    everything = [f.id for f in client.files.list(purpose="fine-tune", limit=2, order="asc")]
    assert everything == ids
    newest = client.files.list(purpose="fine-tune", limit=1)
    assert newest.data[0].id == ids[-1]
    assert len(client.files.list().data) == 6


def test_uploads_in_parts_make_a_file(client: OpenAI) -> None:
    content = chat_lines(12)
    pieces = [content[i : i + 300] for i in range(0, len(content), 300)]
    started = client.uploads.create(
        bytes=len(content), filename="big.jsonl", mime_type="text/jsonl", purpose="fine-tune"
    )
    assert started.status == "pending" and started.id.startswith("upload_")
    parts = [client.uploads.parts.create(started.id, data=piece) for piece in pieces]
    md5 = hashlib.md5(content).hexdigest()
    done = client.uploads.complete(started.id, part_ids=[p.id for p in parts], md5=md5)
    assert done.status == "completed" and done.file is not None
    assert done.file.filename == "big.jsonl" and done.file.bytes == len(content)
    assert client.files.content(done.file.id).content == content


def test_upload_checks_size_and_md5_and_can_be_cancelled(client: OpenAI) -> None:
    started = client.uploads.create(
        bytes=10, filename="x.jsonl", mime_type="text/jsonl", purpose="fine-tune"
    )
    part = client.uploads.parts.create(started.id, data=b"12345")
    with pytest.raises(openai.BadRequestError, match="does not match"):
        client.uploads.complete(started.id, part_ids=[part.id])
    other = client.uploads.parts.create(started.id, data=b"67890")
    with pytest.raises(openai.BadRequestError, match="md5"):
        client.uploads.complete(started.id, part_ids=[part.id, other.id], md5="0" * 32)
    assert client.uploads.cancel(started.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.uploads.parts.create(started.id, data=b"more")
