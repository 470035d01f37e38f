"""Plumbing for the reliability tests: real `serve` and `worker` processes whose service can be
killed and restarted, a dedicated `redis-server` that can be stopped and started on its own
directory, and the sandbox upstream those tests share.

Every process started here is stopped (with whatever it forked) when its context ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
import redis

from service.sandbox import SandboxConfig, SandboxHandle, start_in_thread
from tests.integration.conftest import ADMIN_TOKEN, UPSTREAM_KEY, Deployment, stop_tree
from tests.support import free_port, tunegate_process, wait_for

REDIS_SERVER = "/usr/bin/redis-server"
STACK_SANDBOX = SandboxConfig(
    api_key=UPSTREAM_KEY,
    org_name="reliability-org",
    validating_seconds=0.2,
    queued_seconds=0.2,
    step_seconds=0.05,
    total_steps=10,
)


@pytest.fixture(scope="module")
def stack_sandbox() -> Iterator[SandboxHandle]:
    handle = start_in_thread(STACK_SANDBOX)
    yield handle
    handle.stop()


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Stack(Deployment):
    """A deployment whose service process can be SIGKILLed and started again on its port."""

    services: list[Popen[bytes]] = field(default_factory=list)

    @property
    def service(self) -> Popen[bytes]:
        return self.services[-1]

    def start_service(self) -> Popen[bytes]:
        service = tunegate_process(["serve"], self.env, self.logs / "service.log")
        self.services.append(service)
        wait_for(lambda: healthy(self.url), timeout=60, what="service /health")
        return service

    def kill_service(self) -> None:
        self.kill_worker(self.service)  # same: SIGKILL the process and anything under it

    def stop(self) -> None:
        for process in [*self.services, *self.workers]:
            stop_tree(process)
        for pid in self.strays():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def strays(self) -> list[int]:
        """Processes of this stack still alive (one forked while its parent was stopping
        escapes `stop_tree`): found by the data directory in their environment."""
        marker = f"TUNEGATE_DATA_DIR={self.env['TUNEGATE_DATA_DIR']}".encode()
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            with contextlib.suppress(OSError):
                if marker in environ.read_bytes().split(b"\0"):
                    found.append(int(environ.parent.name))
        return found


@contextlib.contextmanager
def running_stack(
    redis_url: str,
    namespace: str,
    folder: Path,
    sandbox: SandboxHandle,
    name: str,
    **env: str,
) -> Iterator[Stack]:
    """`tunegate serve` and one `tunegate worker` against `redis_url`, upstream a sandbox run of
    its own."""
    port = free_port()
    run = re.sub(r"[^A-Za-z0-9._-]", "-", name)[:40] + "-" + secrets.token_hex(3)
    full_env = {
        "REDIS_URL": redis_url,
        "TUNEGATE_REDIS_NAMESPACE": namespace,
        "TUNEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": sandbox.base_url_for(run),
        "TUNEGATE_DATA_DIR": str(folder / "data"),
        "TUNEGATE_PORT": str(port),
        "TUNEGATE_LOG_FORMAT": "json",
        "TUNEGATE_SWEEP_SECONDS": "2",
        **env,
    }
    stack = Stack(f"http://127.0.0.1:{port}", redis_url, namespace, full_env, folder, sandbox, run)
    try:
        stack.start_worker()
        stack.start_service()
        yield stack
    finally:
        stack.stop()


@pytest.fixture()
def stack(
    redis_url: str,
    redis_namespace: str,
    tmp_path: Path,
    stack_sandbox: SandboxHandle,
    request: pytest.FixtureRequest,
) -> Iterator[Stack]:
    """A stack on the shared test Redis, in a namespace of its own."""
    with running_stack(
        redis_url, redis_namespace, tmp_path, stack_sandbox, request.node.name
    ) as running:
        yield running


class RedisServer:
    """A `redis-server` of our own, configured as compose.yaml's: AOF on, fsync every second."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.process: Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        arguments = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ]
        with (self.folder / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self.answers, timeout=30, what=f"redis-server on {self.port}")
        return self

    def answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM: Redis writes and fsyncs the AOF, then exits. SIGKILL: a crash."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        self.process.wait(timeout=30)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[RedisServer]:
    server = RedisServer(folder).start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def sandbox_counts(stack: Deployment) -> dict[str, Any]:
    with stack.sandbox_api() as api:
        counts: dict[str, Any] = api.get("/counts").json()
    return counts
