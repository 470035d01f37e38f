"""The one table from errors to HTTP: status, OpenAI error type, and the envelope.

Domain errors, Litestar's own errors (unknown route, wrong method, bad JSON, body too large,
validation) and anything unexpected all leave as `{"error": {"message", "type", "param", "code"}}`.
An unexpected exception is a bug: it is logged with its traceback and answered 500.
"""

from __future__ import annotations

import math
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from service import errors
from service.logging import get_logger

log = get_logger(__name__)

_TABLE: list[tuple[type[errors.TunegateError], int, str]] = [
    (errors.DatasetInvalid, 400, "invalid_request_error"),
    (errors.InvalidRequest, 400, "invalid_request_error"),
    (errors.AuthenticationFailed, 401, "authentication_error"),
    (errors.PermissionDenied, 403, "permission_error"),
    (errors.NotFound, 404, "invalid_request_error"),
    (errors.Conflict, 409, "conflict_error"),
    (errors.PayloadTooLarge, 413, "invalid_request_error"),
    (errors.RateLimited, 429, "rate_limit_error"),
    (errors.QuotaExceeded, 429, "insufficient_quota"),
    (errors.Unavailable, 503, "server_error"),
    (errors.UpstreamTimeout, 504, "upstream_error"),
    (errors.UpstreamUnavailable, 502, "upstream_error"),
    (errors.UpstreamRejected, 400, "invalid_request_error"),
    (errors.UpstreamError, 502, "upstream_error"),
]

_FRAMEWORK_CODES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "insufficient_permissions"),
    404: ("invalid_request_error", "unknown_url"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "payload_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def envelope(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def status_and_type(error: errors.TunegateError) -> tuple[int, str]:
    for cls, status, type_ in _TABLE:
        if isinstance(error, cls):
            if isinstance(error, errors.UpstreamRejected):
                return error.status, type_
            return status, type_
    return 500, "server_error"


def error_response(error: errors.TunegateError) -> Response[Any]:
    status, type_ = status_and_type(error)
    body = envelope(error.message, type_, error.param, error.code)
    body["error"].update(error.extra.get("envelope", {}))
    headers: dict[str, str] = dict(error.extra.get("headers", {}))
    if isinstance(error, errors.QuotaExceeded):
        headers["x-should-retry"] = "false"  # the SDKs' signal: retrying cannot help
    if isinstance(error, errors.RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return Response(body, status_code=status, headers=headers)


def handle_domain_error(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, errors.TunegateError)
    return error_response(exc)


def _validation_param(exc: ValidationException) -> str | None:
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict) and item.get("key"):
            return str(item["key"])
    return None


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    details = [
        f"{item.get('key') or 'body'}: {item.get('message')}"
        for item in extra
        if isinstance(item, dict)
    ]
    return "; ".join(details) if details else str(exc.detail)


def handle_http_exception(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status >= 500:
        return handle_unexpected(_request, exc)
    type_, code = _FRAMEWORK_CODES.get(status, ("invalid_request_error", "invalid_request"))
    if isinstance(exc, ValidationException):
        body = envelope(_validation_message(exc), type_, _validation_param(exc), "invalid_value")
    else:
        body = envelope(str(exc.detail), type_, None, code)
    return Response(body, status_code=status, headers=exc.headers or {})


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled_exception", path=request.url.path, exc_info=exc)
    body = envelope("The gateway hit an internal error.", "server_error", None, "internal_error")
    return Response(body, status_code=500)


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    errors.TunegateError: handle_domain_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected,
}
