"""Revoking a key through one `tunegate serve` process is refused by every other one, not after
the cached views' lifetime but as the pub/sub notice arrives: the second process here keeps
views for a minute, so only the notice can make it refuse within the test's wait."""

from __future__ import annotations

import time
from collections.abc import Iterator
from subprocess import Popen

import httpx
import pytest
from redis import Redis

from service.store import keys
from tests.integration.conftest import Deployment, _healthy
from tests.support import free_port, stop_process, tunegate_process, wait_for

pytestmark = pytest.mark.integration
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture()
def second(deployment: Deployment) -> Iterator[str]:
    """Another `serve` process of the same deployment, caching callers' views for a minute."""
    port = free_port()
    env = {**deployment.env, "TUNEGATE_PORT": str(port), "TUNEGATE_CALLER_CACHE_SECONDS": "60"}
    process: Popen[bytes] = tunegate_process(["serve"], env, deployment.logs / "second.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _healthy(url), timeout=30, what="the second service's /health")
        yield url
    finally:
        stop_process(process)


def subscribers(deployment: Deployment) -> int:
    channel = f"{keys.ROOT}{deployment.namespace}:invalidate"
    with Redis.from_url(deployment.redis_url) as redis:
        return int(dict(redis.pubsub_numsub(channel))[channel.encode()])


def complete(url: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(
        f"{url}/v1/chat/completions", json=HELLO, headers=headers, timeout=30
    ).status_code


def test_a_key_revoked_through_one_process_is_refused_by_the_others(
    deployment: Deployment, second: str
) -> None:
    key = deployment.org_with_key("member")
    org_id, key_id = _ids(deployment, key)
    for url in (deployment.url, second):
        assert complete(url, key) == 200  # starts the process's listener
    wait_for(lambda: subscribers(deployment) >= 2, timeout=30, what="both processes to listen")
    assert complete(second, key) == 200  # cached by the second process now
    with deployment.admin() as admin:
        revoked = admin.delete(f"/admin/orgs/{org_id}/keys/{key_id}")
        assert revoked.status_code == 200, revoked.text
    started = time.monotonic()
    assert complete(deployment.url, key) == 401  # the process that revoked it: the next request
    wait_for(lambda: complete(second, key) == 401, timeout=30, what="the second process to refuse")
    print(f"second process refused {time.monotonic() - started:.3f} s after the revocation")


def _ids(deployment: Deployment, key: str) -> tuple[str, str]:
    key_id = key.split("_")[1]
    with deployment.admin() as admin:
        for org in admin.get("/admin/orgs").json()["data"]:
            listed = admin.get(f"/admin/orgs/{org['id']}/keys").json()["data"]
            if any(item["id"] == key_id for item in listed):
                return str(org["id"]), key_id
    raise AssertionError("the key's org was not found")
