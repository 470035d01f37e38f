"""Datasets through the official SDK: upload, validation with line numbers, PII policy, and the
hand-off to the (sandbox) upstream, checked against what the upstream received."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import openai
import orjson
import pytest
from openai import OpenAI

from tests.api.conftest import Gateway, running_gateway
from tests.api.datasets import chat_example, chat_jsonl, with_line
from tests.support import wait_for


@pytest.fixture()
def org_key(gateway: Gateway) -> tuple[str, str]:
    org = gateway.create_org(f"files-{secrets.token_hex(3)}", policy={"pii": "allow"})
    return org, gateway.create_key(org, "member")[1]


@pytest.fixture()
def sdk(gateway: Gateway, org_key: tuple[str, str]) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=org_key[1], max_retries=0) as client:
        yield client


def upstream_uploads(gateway: Gateway) -> list[dict[str, object]]:
    return [r for r in gateway.upstream_requests("/v1/files") if r["method"] == "POST"]


def wait_processed(sdk: OpenAI, file_id: str) -> openai.types.FileObject:
    return wait_for(
        lambda: (f := sdk.files.retrieve(file_id)).status == "processed" and f,
        timeout=30,
        what=f"{file_id} processed",
    )


def test_upload_is_validated_stored_and_handed_upstream_once(gateway: Gateway, sdk: OpenAI) -> None:
    data = chat_jsonl(12, salt=secrets.token_hex(4))
    created = sdk.files.create(file=("train.jsonl", data), purpose="fine-tune")
    assert created.id.startswith("file-")
    assert created.status == "uploaded"
    assert created.bytes == len(data)
    assert created.filename == "train.jsonl"
    wait_processed(sdk, created.id)
    assert sdk.files.content(created.id).content == data
    sha = hashlib.sha256(data).hexdigest()
    received = [r for r in upstream_uploads(gateway) if sha in orjson.dumps(r).decode()]
    assert len(received) == 1
    assert "tgk_" not in orjson.dumps(received[0]).decode()


def test_report_is_served_and_audited(
    gateway: Gateway, sdk: OpenAI, org_key: tuple[str, str]
) -> None:
    created = sdk.files.create(file=("r.jsonl", chat_jsonl(15)), purpose="fine-tune")
    with gateway.client(org_key[1]) as client:
        report = client.get(f"/v1/files/{created.id}/report").json()
    assert report["valid"] is True
    assert report["format"] == "chat"
    assert report["examples"] == 15
    assert report["tokens"]["total"] > 0
    assert report["estimated_costs"]
    org = org_key[0]
    _, admin_key = gateway.create_key(org, "admin")
    with gateway.client(admin_key) as client:
        events = client.get("/v1/audit", params={"action": "files.create"}).json()["data"]
    assert events[0]["resource_id"] == created.id
    assert events[0]["details"]["examples"] == 15


BROKEN = [
    ("invalid_json", 3, b'{"messages": [', None),
    ("blank_line", 4, b"", None),
    ("data_type", 2, b"[1, 2]", None),
    ("missing_messages_list", 5, b'{"prompt_x": 1}', None),
    (
        "unrecognized_role",
        6,
        orjson.dumps(
            {
                "messages": [
                    {"role": "wizard", "content": "x"},
                    {"role": "assistant", "content": "y"},
                ]
            }
        ),
        None,
    ),
    (
        "example_missing_assistant_message",
        7,
        orjson.dumps({"messages": [{"role": "user", "content": "hi"}]}),
        None,
    ),
    ("invalid_utf8", 8, b'{"messages": "\xff\xfe"}', None),
]


@pytest.mark.parametrize(("kind", "line", "replacement", "_"), BROKEN)
def test_broken_files_are_400_with_the_line_and_nothing_reaches_upstream(
    gateway: Gateway, sdk: OpenAI, kind: str, line: int, replacement: bytes, _: None
) -> None:
    data = with_line(chat_jsonl(12, salt=secrets.token_hex(4)), line, replacement)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.files.create(file=("bad.jsonl", data), purpose="fine-tune")
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "invalid_dataset"
    assert error["param"] == "file"
    assert error["line"] == line
    assert {"line": line, "kind": kind}.items() <= error["errors"][0].items()
    assert error["error_counts"][kind] >= 1
    assert f"line {line}" in error["message"]
    assert sdk.files.list().data == []
    sha = hashlib.sha256(data).hexdigest()  # not a count: other tests' hand-offs may land now
    assert not [r for r in upstream_uploads(gateway) if sha in orjson.dumps(r).decode()]


def test_empty_and_too_small_files_are_rejected(sdk: OpenAI) -> None:
    for data, kind in ((b"", "empty_file"), (chat_jsonl(3), "too_few_examples")):
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.files.create(file=("small.jsonl", data), purpose="fine-tune")
        assert kind in caught.value.body["error_counts"]  # type: ignore[index]


def test_wrong_name_and_purpose_are_rejected(sdk: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.files.create(file=("train.csv", chat_jsonl()), purpose="fine-tune")
    assert caught.value.body["param"] == "file"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.files.create(file=("train.jsonl", chat_jsonl()), purpose="assistants")
    assert caught.value.body["param"] == "purpose"  # type: ignore[index]
    assert sdk.files.list().data == []


def test_not_multipart_is_400(gateway: Gateway, org_key: tuple[str, str]) -> None:
    with gateway.client(org_key[1]) as client:
        response = client.post("/v1/files", json={"file": "x"})
        garbled = client.post(
            "/v1/files",
            content=b"--zz\r\nnonsense",
            headers={"Content-Type": "multipart/form-data; boundary=zz"},
        )
    assert response.status_code == 400
    assert garbled.status_code == 400


def test_pii_block_names_lines_and_kinds_never_values(gateway: Gateway) -> None:
    org = gateway.create_org("pii-block", policy={"pii": "block"})
    _, key = gateway.create_key(org, "member")
    rows = [chat_example(i) for i in range(12)]
    rows[4] = chat_example(4, "mail me at jane.doe@example.com please")
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.files.create(file=("pii.jsonl", data), purpose="fine-tune")
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["line"] == 5
        assert "EMAIL" in orjson.dumps(body).decode()
        assert "jane.doe" not in orjson.dumps(body).decode()
        assert sdk.files.list().data == []


def test_pii_redact_stores_and_uploads_only_redacted_bytes(gateway: Gateway) -> None:
    org = gateway.create_org("pii-redact", policy={"pii": "redact"})
    _, key = gateway.create_key(org, "member")
    rows = [chat_example(i) for i in range(12)]
    rows[2] = chat_example(2, "call me on +1 415 555 0132 or jane.doe@example.com")
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as sdk:
        created = sdk.files.create(file=("pii.jsonl", data), purpose="fine-tune")
        stored = sdk.files.content(created.id).content
        assert b"jane.doe" not in stored and b"555 0132" not in stored
        assert b"[EMAIL]" in stored and b"[PHONE]" in stored
        wait_processed(sdk, created.id)
        with gateway.client(key) as client:
            report = client.get(f"/v1/files/{created.id}/report").json()
    assert report["pii"]["counts"] == {"EMAIL": 1, "PHONE": 1}
    assert report["pii"]["lines"] == [3]
    sha = hashlib.sha256(stored).hexdigest()
    received = [r for r in upstream_uploads(gateway) if sha in orjson.dumps(r).decode()]
    assert len(received) == 1


def test_pii_allow_keeps_bytes_and_counts(
    gateway: Gateway, sdk: OpenAI, org_key: tuple[str, str]
) -> None:
    rows = [chat_example(i) for i in range(12)]
    rows[0] = chat_example(0, "my ip is 10.1.2.3")
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    created = sdk.files.create(file=("allow.jsonl", data), purpose="fine-tune")
    assert sdk.files.content(created.id).content == data
    with gateway.client(org_key[1]) as client:
        report = client.get(f"/v1/files/{created.id}/report").json()
    assert report["pii"]["counts"] == {"IP_ADDRESS": 1}


def test_identical_bytes_reuse_one_upstream_copy(gateway: Gateway, sdk: OpenAI) -> None:
    data = chat_jsonl(11, salt=secrets.token_hex(4))
    first = sdk.files.create(file=("a.jsonl", data), purpose="fine-tune")
    wait_processed(sdk, first.id)
    second = sdk.files.create(file=("b.jsonl", data), purpose="fine-tune")
    wait_processed(sdk, second.id)
    sha = hashlib.sha256(data).hexdigest()
    received = [r for r in upstream_uploads(gateway) if sha in orjson.dumps(r).decode()]
    assert len(received) == 1


def test_list_paginates_and_filters(sdk: OpenAI) -> None:
    ids = [
        sdk.files.create(file=(f"{i}.jsonl", chat_jsonl(10 + i)), purpose="fine-tune").id
        for i in range(3)
    ]
    listed = sdk.files.list()
    assert [f.id for f in listed.data] == list(reversed(ids))
    page = sdk.files.list(limit=2)
    assert [f.id for f in page.data] == [ids[2], ids[1]]
    assert page.has_more is True
    assert [f.id for f in sdk.files.list(limit=2, after=ids[1]).data] == [ids[0]]
    assert [f.id for f in sdk.files.list(order="asc").data] == ids
    assert sdk.files.list(purpose="batch").data == []


def test_delete_removes_bytes_record_and_upstream_copy(gateway: Gateway, sdk: OpenAI) -> None:
    created = sdk.files.create(file=("d.jsonl", chat_jsonl(13, salt="del")), purpose="fine-tune")
    processed = wait_processed(sdk, created.id)
    assert processed.status == "processed"
    deleted = sdk.files.delete(created.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(created.id)
    assert not any((gateway.settings.data_dir).rglob(f"{created.id}*"))
    wait_for(
        lambda: any(r["method"] == "DELETE" for r in gateway.upstream_requests("/v1/files/")),
        timeout=30,
        what="upstream delete",
    )


def test_another_orgs_file_is_404_everywhere(gateway: Gateway, sdk: OpenAI) -> None:
    created = sdk.files.create(file=("mine.jsonl", chat_jsonl()), purpose="fine-tune")
    other = gateway.create_org("other")
    _, other_key = gateway.create_key(other, "admin")
    with gateway.client(other_key) as client:
        for method, path in (("GET", ""), ("GET", "/content"), ("GET", "/report"), ("DELETE", "")):
            response = client.request(method, f"/v1/files/{created.id}{path}")
            assert response.status_code == 404, (method, path)
            assert response.json()["error"]["code"] == "file_not_found"
        assert client.get("/v1/files").json()["data"] == []
    assert sdk.files.retrieve(created.id).id == created.id


def test_inference_role_may_not_touch_files(gateway: Gateway) -> None:
    org = gateway.create_org()
    _, key = gateway.create_key(org, "inference")
    with gateway.client(key) as client:
        assert client.get("/v1/files").status_code == 403
        response = client.post(
            "/v1/files", files={"file": ("a.jsonl", chat_jsonl())}, data={"purpose": "fine-tune"}
        )
    assert response.status_code == 403


def test_upload_over_the_limit_is_413_and_leaves_nothing(gateway: Gateway, tmp_path: Path) -> None:
    settings = gateway.settings.model_copy(
        update={"max_upload_bytes": 4096, "data_dir": tmp_path, "redis_url": None}
    )
    with running_gateway(settings, gateway.sandbox) as small:
        org = small.create_org()
        _, key = small.create_key(org, "member")
        with OpenAI(base_url=f"{small.url}/v1", api_key=key, max_retries=0) as sdk:
            with pytest.raises(openai.APIStatusError) as caught:
                sdk.files.create(file=("big.jsonl", chat_jsonl(200)), purpose="fine-tune")
            assert caught.value.status_code == 413
            assert sdk.files.create(file=("ok.jsonl", chat_jsonl(10)), purpose="fine-tune").id
            assert len(sdk.files.list().data) == 1
    assert list((tmp_path / "tmp").iterdir()) == []


def test_dataset_bytes_are_private_to_the_gateway_user(gateway: Gateway, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    settings = gateway.settings.model_copy(update={"data_dir": data_dir, "redis_url": None})
    with running_gateway(settings, gateway.sandbox) as private:
        org = private.create_org(policy={"pii": "allow"})
        _, key = private.create_key(org, "member")
        with OpenAI(base_url=f"{private.url}/v1", api_key=key, max_retries=0) as sdk:
            created = sdk.files.create(file=("p.jsonl", chat_jsonl(10)), purpose="fine-tune")
    stored = data_dir / org / f"{created.id}.jsonl"
    assert stored.stat().st_mode & 0o777 == 0o600
    for folder in (data_dir, data_dir / org, data_dir / "tmp"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder
