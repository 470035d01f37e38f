"""The sandbox's network edge, an ASGI wrapper around its Litestar app.

For every HTTP request it: picks the run (`/runs/<run>/...` path prefix, else the
`X-Sandbox-Run` header, else `default`) and strips the prefix; checks the bearer key; reads the
body; records the request in the run's log (inspection paths under `/_sandbox/` are not
recorded); applies the first matching fault of the run; answers the completion routes itself
(the hot path) and hands everything else to Litestar; and stamps OpenAI's response headers.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from service.sandbox.errors import ApiError, error_body, unauthorized
from service.sandbox.inference_api import Answer, Route
from service.sandbox.inspection import Fault, LogEntry, safe_headers, summarize_multipart
from service.sandbox.state import DEFAULT_RUN, Run, Sandbox

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RUN_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
BAD_KEY = "Incorrect API key provided. The sandbox's key is set in its configuration."
FAULT_ERRORS: dict[str, tuple[int, str, str, str | None]] = {
    "429": (
        429,
        "Rate limit reached for requests (sandbox fault).",
        "requests",
        "rate_limit_exceeded",
    ),
    "500": (500, "The server had an error while processing your request.", "server_error", None),
    "503": (
        503,
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
    ),
}


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _split_run(scope: Scope) -> tuple[str, str]:
    path: str = scope["path"]
    if path.startswith("/runs/"):
        name, _, rest = path.removeprefix("/runs/").partition("/")
        return name, "/" + rest
    header = _header(scope, b"x-sandbox-run")
    return (header.decode("latin-1") if header else DEFAULT_RUN), path


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    start_headers = [(b"content-type", b"application/json"), *headers]
    start_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "Request body too large.", code="payload_too_large")
        chunks.append(chunk)
        more = bool(message.get("more_body", False))
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _hang(seconds: float, receive: Receive) -> bool:
    """Wait `seconds`, or until the client leaves; True when it left."""
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
            return True
    except TimeoutError:
        return False


async def _drop(send: Send) -> None:
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        await asyncio.sleep(0)
        return
    headers = [(b"content-length", b"1000")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{", "more_body": True})


def _retry_headers(seconds: float) -> list[tuple[bytes, bytes]]:
    return [
        (b"retry-after", str(max(1, math.ceil(seconds))).encode()),
        (b"retry-after-ms", str(int(seconds * 1000)).encode()),
    ]


async def _send_answer(answer: Answer, send: Send, delay: float) -> None:
    if answer.events is None:
        headers = [(b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(answer.body)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body, "more_body": False})
        return
    headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    for event in answer.events:
        await send({"type": "http.response.body", "body": event, "more_body": True})
        if delay:
            await asyncio.sleep(delay)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


class Edge:
    def __init__(
        self, app: ASGIApp, sandbox: Sandbox, routes: dict[tuple[str, str], Route]
    ) -> None:
        self.app = app
        self.sandbox = sandbox
        self.routes = routes
        config = sandbox.config
        self.expected = b"Bearer " + config.api_key.encode()
        self.stamp = [
            (b"openai-organization", config.org_name.encode()),
            (b"openai-version", b"2020-10-01"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            await self._handle(scope, receive, send)
        except ApiError as error:
            await _respond(send, error.status, error.body(), self.stamp)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        name, path = _split_run(scope)
        if not RUN_NAME.match(name):
            raise ApiError(400, f"Invalid run name: {name!r}", param="run")
        self._authorize(scope)
        run = self.sandbox.run(name)
        scope = {**scope, "path": path, "raw_path": path.encode()}
        scope.setdefault("state", {})["run"] = run
        body = await _read_body(receive, self.sandbox.config.max_body_bytes)
        if body is None:
            return
        entry = self._record(run, scope, body) if not path.startswith("/_sandbox") else None
        if entry is not None and run.faults.faults:
            fault = run.faults.take(entry.method, path)
            if fault is not None and await self._inject(fault, entry, receive, send):
                return
        route = self.routes.get((scope["method"], path))
        if route is not None:
            delay = self.sandbox.config.stream_delay_seconds
            await _send_answer(route(run, body), self._stamping(send, entry), delay)
            return
        await self.app(scope, _replay(body, receive), self._stamping(send, entry))

    def _authorize(self, scope: Scope) -> None:
        given = _header(scope, b"authorization")
        if given is None:
            raise unauthorized(NO_KEY)
        if not hmac.compare_digest(given, self.expected):
            raise unauthorized(BAD_KEY)

    def _record(self, run: Run, scope: Scope, body: bytes) -> LogEntry:
        content_type = (_header(scope, b"content-type") or b"").decode("latin-1")
        multipart = None
        if content_type.startswith("multipart/form-data"):
            multipart, body = summarize_multipart(body, content_type), b""
        entry = LogEntry(
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=safe_headers(scope["headers"], self.sandbox.config.api_key),
            body=body[: self.sandbox.config.log_body_bytes + 1],
            multipart=multipart,
        )
        run.log.record(entry)
        return entry

    async def _inject(self, fault: Fault, entry: LogEntry, receive: Receive, send: Send) -> bool:
        """Apply `fault`; True when the request is finished with."""
        entry.fault = fault.spec.kind
        if fault.spec.kind == "hang":
            return await _hang(fault.spec.seconds, receive)
        if fault.spec.kind == "drop":
            await _drop(send)
            return True
        status, message, kind, code = FAULT_ERRORS[fault.spec.kind]
        retry_after = fault.spec.retry_after or (1.0 if status == 429 else None)
        headers = self.stamp + (_retry_headers(retry_after) if retry_after else [])
        entry.status = status
        await _respond(send, status, error_body(message, kind, None, code), headers)
        return True

    def _stamping(self, send: Send, entry: LogEntry | None) -> Send:
        started = time.perf_counter()
        request_id = entry.id if entry else "req_" + secrets.token_hex(12)

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                if entry is not None:
                    entry.status = message["status"]
                elapsed = str(int((time.perf_counter() - started) * 1000)).encode()
                extra = [(b"x-request-id", request_id.encode()), (b"openai-processing-ms", elapsed)]
                message = {**message, "headers": [*message.get("headers", []), *self.stamp, *extra]}
            await send(message)

        return stamped
