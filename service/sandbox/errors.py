"""OpenAI's error envelope, as the sandbox answers it: `{"error": {message, type, param, code}}`."""

from __future__ import annotations

import orjson


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> bytes:
    error = {"message": message, "type": kind, "param": param, "code": code}
    return orjson.dumps({"error": error})


class ApiError(Exception):
    """Raised by a handler; rendered as OpenAI's envelope with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code

    def body(self) -> bytes:
        return error_body(self.message, self.kind, self.param, self.code)


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def not_found(message: str, param: str | None = None) -> ApiError:
    return ApiError(404, message, param=param)


def model_not_found(model: str) -> ApiError:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return ApiError(404, message, param="model", code="model_not_found")


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key")
