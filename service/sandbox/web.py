"""Small helpers the sandbox's handlers share: the run, JSON in and out, list query params."""

from __future__ import annotations

from typing import Any, cast

import orjson
from litestar import Request, Response

from service.sandbox.errors import invalid
from service.sandbox.objects import JSON, parse_object
from service.sandbox.state import Run

AnyRequest = Request[Any, Any, Any]
JSON_TYPE = "application/json"


def run_of(request: AnyRequest) -> Run:
    return cast(Run, request.scope["state"]["run"])


def ok(data: Any, status: int = 200) -> Response[bytes]:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON_TYPE)


async def json_body(request: AnyRequest) -> JSON:
    return parse_object(await request.body())


def limit_of(request: AnyRequest, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise invalid(f"limit must be an integer between 1 and {maximum}", "limit")
    return int(raw)
