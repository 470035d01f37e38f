"""`tunegate health`: a container health check that knows which role it checks.

`serve` is healthy when its `/health` answers; `worker` when a worker heartbeat of this
deployment (its Redis namespace honoured) is recent; `sandbox-upstream` when its port answers
HTTP. With no `--role`, the role is the `tunegate` command the container runs as process 1.
"""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from pathlib import Path

from service.config import Settings
from service.store import Store, keys

ROLES = ("serve", "worker", "sandbox-upstream")
SANDBOX_DEFAULT_PORT = 8090
TIMEOUT_SECONDS = 3.0


def container_command(cmdline: Path = Path("/proc/1/cmdline")) -> list[str]:
    """The arguments after `tunegate` of process 1, or [] when it is not tunegate."""
    try:
        args = cmdline.read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []
    for index, arg in enumerate(args):
        if os.path.basename(arg) == "tunegate" or arg == "service.cli":
            return [a for a in args[index + 1 :] if a]
    return []


def detect_role(command: list[str]) -> str:
    return next((arg for arg in command if arg in ROLES), "serve")


def option(command: list[str], name: str) -> str | None:
    for index, arg in enumerate(command):
        if arg == name and index + 1 < len(command):
            return command[index + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


def http_answers(url: str) -> str | None:
    """None when `url` answers below 500; otherwise why not."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:
        return f"{url}: {error}"
    return None if status < 500 else f"{url}: HTTP {status}"


def worker_alive(settings: Settings) -> str | None:
    if settings.redis_url is None:
        return "REDIS_URL is not set (a worker needs it)"
    keys.use_namespace(settings.redis_namespace)

    async def count() -> int:
        store = Store(settings.redis_url or "")
        try:
            return await store.workers.alive_count()
        finally:
            await store.aclose()

    try:
        alive = asyncio.run(count())
    except Exception as error:
        return f"Redis: {error}"
    return None if alive else f"no worker heartbeat in the last minute ({keys.workers()})"


def check(settings: Settings, role: str | None, port: int | None = None) -> str | None:
    """None when healthy; otherwise one line saying what is wrong."""
    command = container_command()
    role = role or detect_role(command)
    if role == "worker":
        return worker_alive(settings)
    if role == "sandbox-upstream":
        port = port or int(option(command, "--port") or SANDBOX_DEFAULT_PORT)
        return http_answers(f"http://127.0.0.1:{port}/v1/models")
    port = port or int(option(command, "--port") or settings.port)
    return http_answers(f"http://127.0.0.1:{port}/health")
