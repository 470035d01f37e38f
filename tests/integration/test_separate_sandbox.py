"""The compose topology without Docker: the sandbox upstream, the service and a worker as three
processes that share nothing but Redis and the network. Both point at the sandbox through
OPENAI_BASE_URL (compose's `sandbox` profile), so the worker never depends on an address the
service published for its own loopback."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.api.datasets import chat_jsonl
from tests.integration.conftest import ADMIN_TOKEN, stop_tree
from tests.support import free_port, stop_process, tunegate_process, wait_for

pytestmark = pytest.mark.integration


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def test_service_and_worker_share_a_sandbox_running_on_its_own(
    redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    sandbox_port, service_port = free_port(), free_port()
    sandbox_key = "sk-sandbox-" + secrets.token_hex(8)
    sandbox = tunegate_process(
        ["sandbox-upstream", "--port", str(sandbox_port), "--api-key", sandbox_key],
        {},
        tmp_path / "sandbox.log",
    )
    env = {
        "REDIS_URL": redis_url,
        "TUNEGATE_REDIS_NAMESPACE": redis_namespace,
        "TUNEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "OPENAI_API_KEY": sandbox_key,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{sandbox_port}/v1",
        "TUNEGATE_DATA_DIR": str(tmp_path / "data"),  # each reads the bytes from shared storage
        "TUNEGATE_PORT": str(service_port),
        "TUNEGATE_LOG_FORMAT": "json",
    }
    service = tunegate_process(["serve"], env, tmp_path / "service.log")
    worker = tunegate_process(["worker"], env, tmp_path / "worker.log")
    url = f"http://127.0.0.1:{service_port}"
    try:
        wait_for(
            lambda: answers(f"http://127.0.0.1:{sandbox_port}/v1/models"),
            timeout=60,
            what="sandbox",
        )
        wait_for(lambda: answers(f"{url}/health"), timeout=60, what="service")
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        with admin:
            org = admin.post("/admin/orgs", json={"name": "compose", "policy": {"pii": "allow"}})
            key = admin.post(
                f"/admin/orgs/{org.json()['id']}/keys", json={"name": "it", "role": "member"}
            ).json()["key"]
        with OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0) as sdk:
            created = sdk.files.create(file=("train.jsonl", chat_jsonl(20)), purpose="fine-tune")
            processed = wait_for(
                lambda: (f := sdk.files.retrieve(created.id)).status == "processed" and f,
                timeout=90,
                what="the worker to hand the file to the sandbox",
            )
        assert processed.status == "processed"
    finally:
        stop_process(service)
        stop_tree(worker)
        stop_process(sandbox)
