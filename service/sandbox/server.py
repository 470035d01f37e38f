"""Running the sandbox with uvicorn: in a background thread (tests, embedded mode) or blocking
(`tunegate sandbox-upstream`)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.sandbox.app import create_app
from service.sandbox.config import SandboxConfig

log = logging.getLogger(__name__)
START_TIMEOUT_SECONDS = 10.0


class _QuietH11(H11Protocol):
    """uvicorn's h11 protocol without access logging, whatever the process's logging says."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False


class _Config(uvicorn.Config):
    def configure_logging(self) -> None:
        """Leave the host process's logging as it is (uvicorn would reconfigure it)."""


def _server(config: SandboxConfig) -> uvicorn.Server:
    settings = _Config(
        create_app(config),
        http=_QuietH11,
        ws="none",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    return uvicorn.Server(settings)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0) lets asyncio switch Nagle off on accepted connections.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@dataclass
class SandboxHandle:
    """A sandbox serving in a daemon thread."""

    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return _url(self.host, self.port)

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as `base_url`, e.g. `http://127.0.0.1:PORT/v1`."""
        return f"{self.url}/v1"

    def base_url_for(self, run: str) -> str:
        """`base_url` of one run: `http://127.0.0.1:PORT/runs/<run>/v1`."""
        return f"{self.url}/runs/{run}/v1"

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)


def start_in_thread(config: SandboxConfig, host: str = "127.0.0.1", port: int = 0) -> SandboxHandle:
    """Serve in a daemon thread; returns once the socket listens."""
    server = _server(config)
    sock = _bind(host, port)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="sandbox-upstream", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the sandbox upstream did not start")
        time.sleep(0.005)
    return SandboxHandle(host, sock.getsockname()[1], server, thread)


def serve(config: SandboxConfig, host: str = "127.0.0.1", port: int = 8090) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM)."""
    server = _server(config)
    sock = _bind(host, port)
    url = _url(host, sock.getsockname()[1])
    log.info("sandbox upstream listening on %s/v1 (org %s)", url, config.org_name)
    server.run(sockets=[sock])
