"""How uvicorn serves the gateway: its limits, from settings, and an HTTP protocol that bounds the
request head.

Slow or greedy clients are held by `TUNEGATE_HTTP_LIMIT_CONCURRENCY` (connections and requests at
once; past it uvicorn answers 503), `TUNEGATE_HTTP_KEEP_ALIVE_SECONDS` (an idle connection is
closed) and `TUNEGATE_HTTP_MAX_HEAD_BYTES` (request line and headers). uvicorn applies a head
limit only with its pure-Python h11 parser; `HeadBoundedProtocol` keeps the C parser (httptools)
and refuses a head past the same limit with a 431 before buffering more of it.
"""

from __future__ import annotations

from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.config import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "http": "service.serving:HeadBoundedProtocol",
        "limit_concurrency": settings.http_limit_concurrency,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "h11_max_incomplete_event_size": settings.http_max_head_bytes,
    }


def _head_too_large(limit: int) -> bytes:
    message = f"The request line and headers exceed this gateway's limit of {limit} bytes."
    error = {"message": message, "type": "invalid_request_error", "param": None}
    body = orjson.dumps({"error": {**error, "code": "request_header_fields_too_large"}})
    head = (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"connection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


class HeadBoundedProtocol(HttpToolsProtocol):
    """httptools, refusing a request whose head grows past `h11_max_incomplete_event_size`."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.head_limit: int | None = config.h11_max_incomplete_event_size
        self.head_open = True
        self.head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self.head_open:
            self.head_bytes += len(data)
        super().data_received(data)
        if self._head_over_limit() and not self.transport.is_closing():
            self.transport.write(_head_too_large(self.head_limit or 0))
            self.transport.close()

    def _head_over_limit(self) -> bool:
        limit = self.head_limit
        return self.head_open and limit is not None and self.head_bytes > limit

    def on_headers_complete(self) -> None:
        self.head_open = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.head_open, self.head_bytes = True, 0
