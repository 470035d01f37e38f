"""`create_app`: the sandbox's Litestar routes behind its edge, and OpenAI-shaped errors."""

from __future__ import annotations

from typing import Any, cast

from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException

from service.sandbox import (
    files_api,
    inference_api,
    inspect_api,
    jobs_api,
    models_api,
    responses_api,
)
from service.sandbox.config import SandboxConfig
from service.sandbox.edge import ASGIApp, Edge
from service.sandbox.errors import ApiError, error_body
from service.sandbox.state import Sandbox

JSON_TYPE = "application/json"


def _api_error(_: Request[Any, Any, Any], error: ApiError) -> Response[bytes]:
    return Response(error.body(), status_code=error.status, media_type=JSON_TYPE)


def _http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    if error.status_code in (404, 405):
        message = f"Invalid URL ({request.method} {request.url.path})"
    else:
        message = str(error.detail)
    body = error_body(message, "invalid_request_error")
    return Response(body, status_code=error.status_code, media_type=JSON_TYPE)


def _server_error(_: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    message = "The server had an error while processing your request."
    return Response(error_body(message, "server_error"), status_code=500, media_type=JSON_TYPE)


def create_app(config: SandboxConfig) -> ASGIApp:
    """The sandbox as an ASGI app (state in memory, lost when the app goes away)."""
    sandbox = Sandbox(config)
    handlers = [
        *files_api.HANDLERS,
        *jobs_api.HANDLERS,
        *models_api.HANDLERS,
        *responses_api.HANDLERS,
    ]
    app = Litestar(
        route_handlers=[*handlers, *inspect_api.HANDLERS],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        state=State({"sandbox": sandbox}),
        openapi_config=None,
        request_max_body_size=config.max_body_bytes,
        logging_config=None,  # the host process owns logging (tunegate's structlog set-up)
    )
    return Edge(cast(ASGIApp, app), sandbox, inference_api.ROUTES)
