"""Callbacks go to public destinations only: a policy naming another is refused when written,
and a delivery checks the destination again (after resolving its name) before it connects."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from service.domain.tenancy.policy import Policy
from service.operations.webhooks import events as webhooks
from tests.api.conftest import Gateway, running_gateway
from tests.support import post_receiver, wait_for
from workers.runtime import build_context


@pytest.fixture(scope="module")
def strict(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose operator allows no private network (the test gateways allow loopback)."""
    settings = gateway.settings.model_copy(
        update={
            "webhook_allow_networks": "",
            "redis_url": None,
            "data_dir": tmp_path_factory.mktemp("strict"),
        }
    )
    with running_gateway(settings, gateway.sandbox) as running:
        yield running


def refused(response: Any) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "webhook_url"
    return str(error["message"])


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:6379/",
        "http://localhost:6379/",
        "http://10.0.0.7/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "https://user:secret@hooks.example.com/done",
    ],
)
def test_a_policy_naming_a_non_public_destination_is_refused(strict: Gateway, url: str) -> None:
    gateway = strict
    org = gateway.create_org(f"hooks-{secrets.token_hex(3)}")
    message = refused(gateway.admin.put(f"/admin/orgs/{org}/policy", json={"webhook_url": url}))
    assert "public destinations only" in message or "credentials" in message
    assert "secret" not in message
    created = gateway.admin.post("/admin/orgs", json={"name": "x", "policy": {"webhook_url": url}})
    refused(created)
    patched = gateway.admin.patch(
        f"/admin/orgs/{org}/policy",
        json={"webhook_url": url},
        headers={"content-type": "application/merge-patch+json"},
    )
    refused(patched)
    assert gateway.admin.get(f"/admin/orgs/{org}/policy").json()["webhook_url"] is None


def test_the_operator_allows_a_private_network(gateway: Gateway) -> None:
    """The test gateways allow 127.0.0.0/8 (`TUNEGATE_WEBHOOK_ALLOW_NETWORKS`), and nothing else
    private."""
    org = gateway.create_org(f"hooks-{secrets.token_hex(3)}")
    allowed = {"webhook_url": "http://127.0.0.1:9/hooks"}
    assert gateway.admin.put(f"/admin/orgs/{org}/policy", json=allowed).status_code == 200
    other = {"webhook_url": "http://169.254.169.254/hooks"}
    refused(gateway.admin.put(f"/admin/orgs/{org}/policy", json=other))


def test_the_gateways_own_admin_api_is_not_a_destination(strict: Gateway) -> None:
    gateway = strict
    org = gateway.create_org(f"hooks-{secrets.token_hex(3)}")
    url = f"{gateway.url}/admin/orgs"
    message = refused(gateway.admin.put(f"/admin/orgs/{org}/policy", json={"webhook_url": url}))
    assert "loopback" in message


def test_a_delivery_checks_the_destination_again(strict: Gateway) -> None:
    """A policy written when the name resolved elsewhere (or before the check existed) still
    reaches nothing private: the attempt is refused and the delivery ends."""
    gateway = strict
    received: list[bytes] = []
    with post_receiver(lambda _path, _headers, body: received.append(body) or 200) as url:
        org_id = gateway.create_org(f"hooks-{secrets.token_hex(3)}")
        delivery_id = f"whdel_test_{secrets.token_hex(4)}"
        asyncio.run(_queue_callback(gateway, org_id, url, delivery_id))
        delivery = wait_for(
            lambda: (d := asyncio.run(_delivery(gateway, delivery_id))).status != "pending" and d,
            timeout=60,
            what="the delivery to end",
        )
    assert delivery.status == "failed"
    assert "loopback" in (delivery.attempts[0].error or "")
    assert received == []


async def _queue_callback(gateway: Gateway, org_id: str, url: str, delivery_id: str) -> None:
    ctx = await build_context(gateway.settings)
    try:
        org = await ctx.store.tenancy.get_org(org_id)
        assert org is not None
        org.policy = Policy.model_validate({"webhook_url": url})  # as stored before the check
        org.webhook_secret = await webhooks.rotate_webhook_secret(ctx.store, org_id)
        await ctx.store.tenancy.put_org(org)
        await webhooks.queue_callback(ctx, org_id, "ftjob-test", delivery_id, "test.event", {})
    finally:
        ctx.queue.close()
        await ctx.aclose()


async def _delivery(gateway: Gateway, delivery_id: str) -> Any:
    ctx = await build_context(gateway.settings)
    try:
        return await ctx.store.webhooks.get(delivery_id)
    finally:
        ctx.queue.close()
        await ctx.aclose()
