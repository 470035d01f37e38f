"""uvicorn as the gateway runs it: a request head past `TUNEGATE_HTTP_MAX_HEAD_BYTES` is refused
with a 431 before more of it is buffered, ordinary requests (keep-alive, large bodies) are not,
and past `TUNEGATE_HTTP_LIMIT_CONCURRENCY` uvicorn answers 503."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import uvicorn

from service.config import Settings
from service.serving import uvicorn_options
from tests.support import free_port, wait_for


async def echo_length(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


@contextmanager
def served(**env: Any) -> Iterator[int]:
    settings = Settings(**env)
    port = free_port()
    config = uvicorn.Config(
        echo_length,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        **uvicorn_options(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="server start")
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def raw_exchange(port: int, payload: bytes, piece: int = 1024) -> bytes:
    """Send `payload` a piece at a time, stopping as soon as the server answers, and read the
    answer to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for start in range(0, len(payload), piece):
            if select.select([sock], [], [], 0)[0]:
                break
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(payload[start : start + piece])
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def test_the_options_come_from_settings() -> None:
    options = uvicorn_options(
        Settings(http_limit_concurrency=7, http_keep_alive_seconds=9, http_max_head_bytes=8192)
    )
    assert options["limit_concurrency"] == 7
    assert options["timeout_keep_alive"] == 9
    assert options["h11_max_incomplete_event_size"] == 8192


def test_a_huge_request_head_is_431_in_the_envelope() -> None:
    with served(http_max_head_bytes=8192) as port:
        head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Filler: " + b"a" * 200_000 + b"\r\n\r\n"
        answer = raw_exchange(port, head)
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431"), answer[:200]
    assert orjson.loads(body)["error"]["code"] == "request_header_fields_too_large"


def test_ordinary_requests_and_large_bodies_pass() -> None:
    with served(http_max_head_bytes=8192) as port, httpx.Client(timeout=30) as client:
        for _ in range(3):  # one keep-alive connection, request after request
            response = client.post(
                f"http://127.0.0.1:{port}/", content=b"x" * 1_000_000, headers={"X-A": "b" * 4000}
            )
            assert response.status_code == 200
            assert response.text == "1000000"


def test_past_the_concurrency_limit_uvicorn_answers_503() -> None:
    request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with (
        served(http_limit_concurrency=1) as port,
        socket.create_connection(("127.0.0.1", port), timeout=30) as idle,
    ):
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # holds the one slot, head unfinished
        wait_for(
            lambda: raw_exchange(port, request).startswith(b"HTTP/1.1 503"),
            timeout=30,
            what="a 503 past the concurrency limit",
        )
