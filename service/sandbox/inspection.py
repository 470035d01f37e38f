"""What a run records and what it breaks on purpose: the request log and the fault book.

Log entries keep method, path, query, headers and body, never credentials: `Authorization`,
cookies and any header whose name or value looks like a key are dropped. A multipart body is
kept as its form fields plus the file part's filename, size and sha256. Faults are matched by
method and path prefix; a counted fault fires on the next `count` matches, a random one fires on
a seeded share `probability` of matches (up to `count` times when given).
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.ids import new_id
from service.sandbox.errors import invalid
from service.sandbox.objects import JSON

SECRET_NAMES = re.compile(
    r"auth|cookie|api[-_]?key|token|secret|password|credential", re.IGNORECASE
)
SECRET_VALUES = re.compile(r"bearer\s|\b(sk|rk|pk|sess)-[\w-]{6,}", re.IGNORECASE)


def safe_headers(raw: list[tuple[bytes, bytes]], api_key: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name, value = name_bytes.decode("latin-1"), value_bytes.decode("latin-1")
        if SECRET_NAMES.search(name) or SECRET_VALUES.search(value) or api_key in value:
            continue
        headers[name] = value
    return headers


def summarize_multipart(body: bytes, content_type: str) -> JSON:
    boundary = content_type.partition("boundary=")[2].strip('"').encode()
    summary: JSON = {"fields": {}, "files": []}
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, payload = part.removeprefix(b"\r\n").removesuffix(b"\r\n").partition(b"\r\n\r\n")
        disposition = head.decode("latin-1")
        name = re.search(r'name="([^"]*)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        if filename:
            digest = hashlib.sha256(payload).hexdigest()
            summary["files"].append(
                {
                    "field": name and name[1],
                    "filename": filename[1],
                    "size": len(payload),
                    "sha256": digest,
                }
            )
        elif name:
            summary["fields"][name[1]] = payload.decode("utf-8", "replace")[:200]
    return summary


def _body(body: bytes, limit: int) -> JSON:
    if not body:
        return {"body": None}
    clipped = body[:limit]
    try:
        return {"body": orjson.loads(clipped), "truncated": False}
    except orjson.JSONDecodeError:
        return {"body": clipped.decode("utf-8", "replace"), "truncated": len(body) > limit}


@dataclass
class LogEntry:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    multipart: JSON | None = None
    id: str = field(default_factory=lambda: "req_" + secrets.token_hex(12))
    at: float = field(default_factory=time.time)
    status: int | None = None
    fault: str | None = None

    def to_json(self, body_limit: int) -> JSON:
        return {
            "id": self.id,
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            **({"multipart": self.multipart} if self.multipart else _body(self.body, body_limit)),
            "status": self.status,
            "fault": self.fault,
        }


class FaultSpec(BaseModel):
    """`POST /_sandbox/faults` body."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["429", "500", "503", "hang", "drop"]
    method: str = "*"
    path_prefix: str = "/v1/"
    count: int | None = Field(default=1, ge=1)
    probability: float | None = Field(default=None, ge=0, le=1)
    seed: int = 0
    retry_after: float | None = Field(default=None, gt=0, le=60)
    seconds: float = Field(default=30.0, ge=0, le=3600)


@dataclass
class Fault:
    spec: FaultSpec
    remaining: int | None
    rng: random.Random
    id: str = field(default_factory=lambda: new_id("fault_", 12))
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.spec.method in ("*", method) and path.startswith(self.spec.path_prefix)

    def fire(self) -> bool:
        if self.spec.probability is not None and self.rng.random() >= self.spec.probability:
            return False
        self.fired += 1
        if self.remaining is not None:
            self.remaining -= 1
        return True

    @property
    def spent(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def to_json(self) -> JSON:
        state = {"id": self.id, "remaining": self.remaining, "fired": self.fired}
        return {**state, **self.spec.model_dump()}


def parse_fault(body: Any) -> Fault:
    try:
        spec = FaultSpec.model_validate(body)
    except ValidationError as error:
        raise invalid(f"invalid fault: {error.errors()[0]['msg']}") from None
    if spec.count is None and spec.probability is None:
        raise invalid("count may only be null for a random fault (with probability)", "count")
    spec = spec.model_copy(update={"method": spec.method.upper()})
    return Fault(spec, spec.count, random.Random(spec.seed))


class FaultBook:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def take(self, method: str, path: str) -> Fault | None:
        """The fault this request meets, if any; spent faults leave the book."""
        for fault in self.faults:
            if fault.matches(method, path) and fault.fire():
                if fault.spent:
                    self.faults.remove(fault)
                return fault
        return None


class RequestLog:
    def __init__(self, size: int) -> None:
        self.entries: deque[LogEntry] = deque(maxlen=size)

    def record(self, entry: LogEntry) -> None:
        self.entries.append(entry)

    def select(self, method: str | None, path_prefix: str | None) -> list[LogEntry]:
        return [
            e
            for e in self.entries
            if (method is None or e.method == method.upper())
            and (path_prefix is None or e.path.startswith(path_prefix))
        ]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.entries:
            key = f"{entry.method} {entry.path}"
            counts[key] = counts.get(key, 0) + 1
        return counts
