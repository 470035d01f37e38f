"""A whole gateway in this process (embedded Redis, worker threads) served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from service.config import Settings
from service.logging import configure_logging
from service.runtime import build_gateway
from service.sandbox import SandboxConfig, SandboxHandle, start_in_thread
from tests.support import ServerThread

ADMIN_TOKEN = "tga_test-admin-token-0123456789abcdef"
UPSTREAM_KEY = "sk-upstream-test-key-0123456789abcdef"
GATEWAY_RUN = "gateway"
FAST_SANDBOX = SandboxConfig(
    api_key=UPSTREAM_KEY,
    org_name="test-org",
    validating_seconds=0.05,
    queued_seconds=0.05,
    step_seconds=0.01,
    total_steps=10,
)


@dataclass
class Gateway:
    url: str
    settings: Settings
    admin: httpx.Client
    sandbox: SandboxHandle

    def upstream_requests(self, path_prefix: str = "/v1/") -> list[dict[str, Any]]:
        """What reached the sandbox upstream from this gateway, oldest first."""
        response = httpx.get(
            f"{self.sandbox.url}/runs/{GATEWAY_RUN}/_sandbox/requests",
            params={"path_prefix": path_prefix},
            headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
            timeout=10,
        )
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def create_org(self, name: str = "acme", policy: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"name": name}
        if policy is not None:
            body["policy"] = policy
        response = self.admin.post("/admin/orgs", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def create_key(self, org_id: str, role: str = "admin", name: str = "test") -> tuple[str, str]:
        response = self.admin.post(f"/admin/orgs/{org_id}/keys", json={"name": name, "role": role})
        assert response.status_code == 201, response.text
        body = response.json()
        return str(body["id"]), str(body["key"])


def gateway_settings(data_dir: Path, upstream_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "openai_api_key": SecretStr(UPSTREAM_KEY),
        "openai_base_url": upstream_url,
        "admin_token": SecretStr(ADMIN_TOKEN),
        "data_dir": data_dir,
        "log_format": "json",
        "webhook_allow_networks": "127.0.0.0/8",  # callback tests' receivers listen on loopback
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_gateway(settings: Settings, sandbox: SandboxHandle) -> Iterator[Gateway]:
    built = build_gateway(settings)
    server = ServerThread(built.asgi).start()
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    )
    try:
        yield Gateway(url=server.url, settings=built.settings, admin=admin, sandbox=sandbox)
    finally:
        admin.close()
        server.stop()
        built.close()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    configure_logging("json", "info")
    sandbox = start_in_thread(FAST_SANDBOX)
    settings = gateway_settings(tmp_path_factory.mktemp("data"), sandbox.base_url_for(GATEWAY_RUN))
    try:
        with running_gateway(settings, sandbox) as running:
            yield running
    finally:
        sandbox.stop()


@pytest.fixture()
def org(gateway: Gateway) -> str:
    return gateway.create_org()
