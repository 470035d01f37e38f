"""JSON request bodies: at most `MAX_JSON_DEPTH` levels of arrays and objects, on every route.

No OpenAI request nests anywhere near that deep (a tool's JSON schema is the deepest part), and
below it nothing downstream can fail on depth: the decoder's recursion guard, the recursive walks
of the privacy policy and the encoder that sends a body upstream all go deeper. A deeper body is
a 400. Routes that take `JSONBody` are checked by the request class every route gets; the
completion proxy, which passes the raw bytes on, checks them itself with `check_json_depth`.
"""

from __future__ import annotations

from typing import Any

import orjson
from litestar import Request

from service.errors import InvalidRequest

MAX_JSON_DEPTH = 64


def too_deep() -> InvalidRequest:
    return InvalidRequest(
        f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.", code="invalid_json"
    )


def exceeds_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether arrays and objects nest more than `limit` levels in `value` (level by level, no
    recursion, stopping at the limit)."""
    level = [value]
    for _ in range(limit):
        level = [
            child
            for node in level
            if isinstance(node, list | dict)
            for child in (node.values() if isinstance(node, dict) else node)
        ]
        if not level:
            return False
    return any(isinstance(node, list | dict) for node in level)


def check_json_depth(body: bytes) -> None:
    """Refuse a raw body nested too deeply; one that is not JSON is left to its parser."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if "depth" in str(error) or "recursion" in str(error).lower():
            raise too_deep() from None
        return
    if exceeds_depth(value):
        raise too_deep()


class GatewayRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            value = await super().json()
        except RecursionError:
            raise too_deep() from None
        if exceeds_depth(value):
            raise too_deep()
        return value
