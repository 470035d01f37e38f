"""Real processes against a real Redis: `tunegate serve` and `tunegate worker`, with the sandbox
upstream over HTTP (each test in its own sandbox run)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest

from service.sandbox import SandboxConfig, SandboxHandle, start_in_thread
from tests.support import free_port, stop_process, tunegate_process, wait_for

ADMIN_TOKEN = "tga_integration-admin-token-0123456789"
UPSTREAM_KEY = "sk-integration-upstream-0123456789"
SANDBOX = SandboxConfig(
    api_key=UPSTREAM_KEY,
    org_name="it-org",
    validating_seconds=0.2,
    queued_seconds=0.2,
    step_seconds=0.05,
    total_steps=10,
)


@dataclass
class Deployment:
    url: str
    redis_url: str
    namespace: str
    env: dict[str, str]
    logs: Path
    sandbox: SandboxHandle
    run: str
    workers: list[Popen[bytes]] = field(default_factory=list)

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def sandbox_api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.sandbox.url}/runs/{self.run}/_sandbox",
            headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
            timeout=30,
        )

    def upstream_requests(self, path_prefix: str = "/v1/") -> list[dict[str, Any]]:
        with self.sandbox_api() as api:
            response = api.get("/requests", params={"path_prefix": path_prefix})
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def start_worker(self) -> Popen[bytes]:
        worker = tunegate_process(["worker"], self.env, self.logs / "worker.log")
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: Popen[bytes]) -> None:
        """SIGKILL the worker and every process under it (RQ's work horse leaves the worker's
        process group, so kill by parentage)."""
        for pid in [*descendants(worker.pid), worker.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=10)

    def org_with_key(self, role: str = "admin", policy: dict[str, Any] | None = None) -> str:
        with self.admin() as admin:
            body: dict[str, Any] = {"name": f"org-{secrets.token_hex(3)}"}
            if policy is not None:
                body["policy"] = policy
            org = admin.post("/admin/orgs", json=body).json()["id"]
            created = admin.post(f"/admin/orgs/{org}/keys", json={"name": "it", "role": role})
        return str(created.json()["key"])

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs.glob("*.log"))


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_in_thread(SANDBOX)
    yield handle
    handle.stop()


@pytest.fixture()
def deployment(
    redis_url: str,
    redis_namespace: str,
    tmp_path: Path,
    sandbox: SandboxHandle,
    request: pytest.FixtureRequest,
) -> Iterator[Deployment]:
    port = free_port()
    run = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)[:40] + "-" + secrets.token_hex(3)
    env = {
        "REDIS_URL": redis_url,
        "TUNEGATE_REDIS_NAMESPACE": redis_namespace,
        "TUNEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": sandbox.base_url_for(run),
        "TUNEGATE_DATA_DIR": str(tmp_path / "data"),
        "TUNEGATE_PORT": str(port),
        "TUNEGATE_LOG_FORMAT": "json",
        "TUNEGATE_SWEEP_SECONDS": "2",
    }
    deployment = Deployment(
        f"http://127.0.0.1:{port}", redis_url, redis_namespace, env, tmp_path, sandbox, run
    )
    deployment.start_worker()
    service = tunegate_process(["serve"], env, tmp_path / "service.log")
    try:
        wait_for(lambda: _healthy(deployment.url), timeout=30, what="service /health")
        yield deployment
    finally:
        stop_process(service)
        for worker in deployment.workers:
            stop_tree(worker)


def stop_tree(process: Popen[bytes]) -> None:
    """Stop a worker, then kill whatever it forked (scheduler, work horse) that outlived it, so
    nothing from this test keeps working on the shared Redis."""
    forked = descendants(process.pid)
    stop_process(process)
    for pid in forked:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
