"""Embedded mode: everything in one process for a person trying tunegate on a laptop.

One in-process fakeredis server stands in for Redis. It listens on no socket at all: the
service, the worker threads and the scheduler reach it through clients made by
`connect_embedded`, which `REDIS_URL`-shaped code gets from an `embedded://<id>` URL. Blocking
pops and pub/sub wait on the server's own events, so an idle gateway sleeps. Nothing survives a
restart.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from fakeredis import FakeAsyncRedis, FakeRedis, FakeServer
from redis.exceptions import ConnectionError as RedisConnectionError

SCHEME = "embedded://"
_servers: dict[str, FakeServer] = {}
_lock = threading.Lock()
RQ_SEES_VERSION = (6, 0, 6)


def is_embedded_url(url: str) -> bool:
    return url.startswith(SCHEME)


class EmbeddedRedis:
    def __init__(self) -> None:
        self.id = secrets.token_hex(8)
        self.server = FakeServer(version=(7, 0))

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.id}"

    def start(self) -> EmbeddedRedis:
        with _lock:
            _servers[self.id] = self.server
        return self

    def stop(self) -> None:
        """Clients still holding the server see a lost connection, as after a Redis crash."""
        self.server.connected = False
        with _lock:
            _servers.pop(self.id, None)


def embedded_server(url: str) -> FakeServer:
    with _lock:
        server = _servers.get(url.removeprefix(SCHEME).split("/", 1)[0])
    if server is None:
        raise RedisConnectionError(f"no embedded Redis at {url} in this process")
    return server


def connect_embedded(url: str, *, asyncio: bool = False, decode_responses: bool = False) -> Any:
    """A redis-py client (sync, or asyncio) of the embedded server at `url`."""
    client_class = FakeAsyncRedis if asyncio else FakeRedis
    return adapt_rq_connection(
        client_class(server=embedded_server(url), decode_responses=decode_responses)
    )


def adapt_rq_connection(connection: Any) -> Any:
    """Tell RQ (which caches the server version on the connection) it talks to Redis 6.0: RQ
    then waits for work with BLPOP, which fakeredis blocks on, rather than BLMOVE (6.2+),
    which fakeredis answers at once, so idle worker threads would spin."""
    setattr(connection, "__rq_redis_server_version", RQ_SEES_VERSION)
    return connection
