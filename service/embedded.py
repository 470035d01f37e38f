"""Embedded mode: everything in one process for a person trying tunegate on a laptop.

fakeredis answers over a loopback TCP port (so the service and the worker threads use the very
same Redis client code as in production), and RQ workers run as threads. Nothing survives a
restart.
"""

from __future__ import annotations

import threading
from typing import Any

from fakeredis import TcpFakeServer
from fakeredis._clients._tcp_server import TCPFakeRequestHandler
from redis.exceptions import ResponseError

from service.logging import get_logger

log = get_logger("tunegate.embedded")


class _ErrorTolerantHandler(TCPFakeRequestHandler):
    """Answer a command error (NOSCRIPT, WRONGTYPE, ...) as an error reply and keep the
    connection, as Redis does; the stock handler drops the connection, which breaks redis-py's
    EVALSHA-then-load script calls that RQ relies on."""

    def setup(self) -> None:
        super().setup()
        read_response = self.current_client.read_response

        def tolerant_read_response(*args: Any, **kwargs: Any) -> Any:
            try:
                return read_response(*args, **kwargs)
            except ResponseError as error:
                return error

        self.current_client.read_response = tolerant_read_response  # type: ignore[method-assign]


class EmbeddedRedis:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = TcpFakeServer((host, port))
        self.server.RequestHandlerClass = _ErrorTolerantHandler
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="embedded-redis", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"redis://{host!s}:{port}/0"

    def start(self) -> EmbeddedRedis:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def adapt_rq_connection(connection: Any) -> Any:
    """fakeredis has no INFO command, which RQ uses only to learn the server version; RQ caches
    that version on the connection, so give it the version fakeredis emulates."""
    setattr(connection, "__rq_redis_server_version", (7, 0, 0))
    return connection
