"""An upload holds in memory only a bounded amount besides the file: a few small form fields and
short part headers. Past that it is refused at once (the service once buffered 3,000 fields of
60 KB, 174 MB, before answering 400)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest

from service.http.multipart import MAX_FIELDS, MAX_FIELDS_BYTES, MAX_PART_HEAD_BYTES
from tests.api.conftest import Gateway
from tests.api.datasets import chat_jsonl
from tests.api.test_serving import raw_exchange

BOUNDARY = b"tgbound"


@pytest.fixture()
def org_key(gateway: Gateway) -> str:
    org = gateway.create_org(f"fields-{secrets.token_hex(3)}", policy={"pii": "allow"})
    return gateway.create_key(org, "member")[1]


def field(name: str, value: bytes, extra_head: bytes = b"") -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'.encode()
    head = b"--" + BOUNDARY + b"\r\n" + disposition + b"\r\n" + extra_head
    return head + b"\r\n" + value + b"\r\n"


def file_part() -> bytes:
    head = b'Content-Disposition: form-data; name="file"; filename="t.jsonl"\r\n'
    return b"--" + BOUNDARY + b"\r\n" + head + b"\r\n" + chat_jsonl(12) + b"\r\n"


def chunked(parts: Iterator[bytes]) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return body + b"0\r\n\r\n"


def upload(gateway: Gateway, key: str, parts: list[bytes]) -> tuple[int, dict[str, object]]:
    """POST the parts as one chunked multipart body over a raw socket (stopping when the
    gateway answers); the status and the error envelope."""
    closing = b"--" + BOUNDARY + b"--\r\n"
    host = urlsplit(gateway.url).netloc
    head = (
        f"POST /v1/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY.decode()}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    port = int(host.rsplit(":", 1)[1])
    answer = raw_exchange(port, head + chunked(iter([*parts, closing])), piece=64 * 1024)
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    status = int(status_line.split()[1])
    return status, orjson.loads(body)["error"] if status >= 400 else {}


def test_purpose_and_the_file_upload(gateway: Gateway, org_key: str) -> None:
    status, error = upload(gateway, org_key, [field("purpose", b"fine-tune"), file_part()])
    assert status == 200, error


def test_many_fields_of_60_kb_are_413_before_they_are_all_read(
    gateway: Gateway, org_key: str
) -> None:
    fields = [field(f"f{index}", b"x" * 60_000) for index in range(40)]
    status, error = upload(gateway, org_key, [*fields, file_part()])
    assert status == 413
    assert error["code"] == "payload_too_large"
    assert str(MAX_FIELDS_BYTES) in str(error["message"])


def test_more_fields_than_allowed_is_400(gateway: Gateway, org_key: str) -> None:
    fields = [field(f"f{index}", b"1") for index in range(MAX_FIELDS + 1)]
    status, error = upload(gateway, org_key, [field("purpose", b"fine-tune"), *fields, file_part()])
    assert status == 400
    assert error["code"] == "too_many_fields"


def test_a_part_with_huge_headers_is_400(gateway: Gateway, org_key: str) -> None:
    huge = b"X-Filler: " + b"a" * (MAX_PART_HEAD_BYTES * 4) + b"\r\n"
    status, error = upload(gateway, org_key, [field("purpose", b"fine-tune", huge), file_part()])
    assert status == 400
    assert error["code"] == "invalid_multipart"
