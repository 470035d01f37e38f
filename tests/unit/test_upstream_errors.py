"""`map_error`: SDK and transport failures become domain errors, scrubbed."""

from __future__ import annotations

from typing import Any

import httpx2
import openai
import pytest

from service.errors import (
    TunegateError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from service.upstream import map_error

REQUEST = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")


def status_error(
    kind: type[openai.APIStatusError], status: int, error: dict[str, Any], **headers: str
) -> openai.APIStatusError:
    response = httpx2.Response(
        status, headers={"x-request-id": "req_abc123", **headers}, request=REQUEST
    )
    return kind(f"Error code: {status}", response=response, body=error)


def envelope(message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"message": message, "type": "invalid_request_error", "param": param, "code": code}


def test_4xx_is_rejected_with_status_param_and_code() -> None:
    error = status_error(
        openai.BadRequestError, 400, envelope("invalid training_file: file-1", "training_file")
    )
    mapped = map_error(error)
    assert isinstance(mapped, UpstreamRejected)
    assert (mapped.status, mapped.param, mapped.code) == (400, "training_file", "upstream_error")
    assert mapped.message == "invalid training_file: file-1"


def test_upstream_identifiers_are_scrubbed() -> None:
    message = (
        "Rate limit reached for gpt-4o-mini in organization org-AbC123 on requests per min. "
        "Key sk-proj-abc***xyz, project proj_9x8y, user-Zz9 (request ID req_77aa)."
    )
    error = status_error(
        openai.RateLimitError,
        429,
        envelope(message, code="rate_limit_exceeded"),
        **{"retry-after": "3"},
    )
    mapped = map_error(error)
    assert isinstance(mapped, UpstreamRejected) and mapped.status == 429
    for secret in ("org-AbC123", "sk-proj", "proj_9x8y", "user-Zz9", "req_77aa"):
        assert secret not in mapped.message
    assert mapped.message.startswith(
        "Rate limit reached for gpt-4o-mini in organization [redacted]"
    )
    assert mapped.extra == {"retry_after": 3.0}
    assert "req_abc123" not in repr(vars(mapped))


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_unavailable(status: int) -> None:
    error = status_error(openai.InternalServerError, status, envelope("boom at org-1"))
    mapped = map_error(error)
    assert type(mapped) is UpstreamUnavailable
    assert "org-1" not in mapped.message


def test_our_own_bad_key_is_unavailable_not_a_401_for_the_caller() -> None:
    error = status_error(
        openai.AuthenticationError, 401, envelope("Incorrect API key", code="invalid_api_key")
    )
    assert type(map_error(error)) is UpstreamUnavailable


def test_timeouts_and_connection_failures() -> None:
    timed_out = status_error(openai.APIStatusError, 408, envelope("Request timed out"))
    assert type(map_error(timed_out)) is UpstreamTimeout
    assert type(map_error(openai.APITimeoutError(request=REQUEST))) is UpstreamTimeout
    assert type(map_error(openai.APIConnectionError(request=REQUEST))) is UpstreamUnavailable
    assert type(map_error(httpx2.ReadTimeout("slow", request=REQUEST))) is UpstreamTimeout
    dropped = httpx2.RemoteProtocolError("peer closed", request=REQUEST)
    assert type(map_error(dropped)) is UpstreamUnavailable


def test_anything_else_is_a_generic_upstream_error() -> None:
    assert type(map_error(openai.OpenAIError("odd"))) is UpstreamError
    mapped = map_error(RuntimeError("bug"))
    assert isinstance(mapped, TunegateError) and type(mapped) is UpstreamError


def test_a_body_without_a_message_still_maps() -> None:
    error = status_error(openai.NotFoundError, 404, {})
    mapped = map_error(error)
    assert isinstance(mapped, UpstreamRejected) and mapped.status == 404
    assert mapped.message == "Upstream rejected it"
