"""The sandbox's plain objects (files, uploads, models) and OpenAI's list pagination."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from service.ids import new_id
from service.sandbox.errors import invalid

T = TypeVar("T")
JSON = dict[str, Any]

BASE_MODELS: dict[str, int] = {
    "gpt-4o-mini-2024-07-18": 1721172741,
    "gpt-4o-2024-08-06": 1722814719,
    "gpt-4.1-2025-04-14": 1744316542,
    "gpt-4.1-mini-2025-04-14": 1744317547,
    "gpt-4.1-nano-2025-04-14": 1744321025,
    "o4-mini-2025-04-16": 1744133301,
    "gpt-3.5-turbo-0125": 1706048358,
    "babbage-002": 1692634615,
    "davinci-002": 1692634301,
}
ALIASES: dict[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o4-mini": "o4-mini-2025-04-16",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}
COMPLETION_MODELS = frozenset({"babbage-002", "davinci-002"})


def parse_object(raw: bytes) -> JSON:
    """A request body that must be a JSON object (400 otherwise, as OpenAI answers)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise invalid("We could not parse the JSON body of your request.")
    return body


def now() -> int:
    return int(time.time())


@dataclass
class StoredFile:
    filename: str
    purpose: str
    content: bytes
    id: str = field(default_factory=lambda: new_id("file-"))
    created_at: int = field(default_factory=now)

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class Upload:
    filename: str
    purpose: str
    size: int
    mime_type: str
    id: str = field(default_factory=lambda: new_id("upload_"))
    created_at: int = field(default_factory=now)
    status: str = "pending"
    parts: dict[str, bytes] = field(default_factory=dict)
    file: StoredFile | None = None

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "object": "upload",
            "bytes": self.size,
            "created_at": self.created_at,
            "expires_at": self.created_at + 3600,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "file": self.file.to_json() if self.file else None,
        }


@dataclass
class TunedModel:
    id: str
    owned_by: str
    job_id: str
    listed: bool = True
    created: int = field(default_factory=now)
    memory: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
        }


def base_model_json(model_id: str) -> JSON:
    created = BASE_MODELS[ALIASES.get(model_id, model_id)]
    return {"id": model_id, "object": "model", "created": created, "owned_by": "system"}


def resolve_base(model: str) -> str | None:
    """The snapshot a base model name (or alias) stands for; None when it is not a base model."""
    model = ALIASES.get(model, model)
    return model if model in BASE_MODELS else None


def paginate(
    items: Sequence[T], after: str | None, limit: int, key: Callable[[T], str]
) -> tuple[list[T], bool]:
    """Items after the one whose id is `after` (none when unknown), at most `limit` of them."""
    start = 0
    if after:
        ids = [key(item) for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chunk = list(items[start : start + limit])
    return chunk, start + limit < len(items)


def list_json(data: list[JSON], has_more: bool | None = None) -> JSON:
    body: JSON = {"object": "list", "data": data}
    if has_more is not None:
        body["has_more"] = has_more
        body["first_id"] = data[0]["id"] if data else None
        body["last_id"] = data[-1]["id"] if data else None
    return body
