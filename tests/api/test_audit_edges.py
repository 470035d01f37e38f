"""Who can write to the audit trail: a caller who did not authenticate writes only to the
gateway's own stream (it once created a stream for any org id it named), a request no route
matches is counted, not recorded, and records past `TUNEGATE_AUDIT_RETENTION_DAYS` are trimmed by
the sweeper, which records the trim."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from service.ids import new_id
from service.operations import maintenance
from service.operations.context import Context
from service.operations.tenancy.audit import audit_event
from service.store import Store, keys
from service.store.tenancy.audit import AuditFilter
from tests.api.conftest import Gateway

T = TypeVar("T")
DAY = 86_400
SEED = audit_event(principal=None, action="seed", outcome="success").model_dump_json()


def with_store(gateway: Gateway, use: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = Store(gateway.settings.redis_url or "")
        try:
            return await use(store)
        finally:
            await store.aclose()

    return asyncio.run(run())


def stream_length(gateway: Gateway, org_id: str | None) -> int:
    async def length(store: Store) -> int:
        return int(await store.redis.xlen(keys.audit(org_id)))

    return with_store(gateway, length)


def stream_exists(gateway: Gateway, org_id: str) -> bool:
    async def exists(store: Store) -> bool:
        return bool(await store.redis.exists(keys.audit(org_id)))

    return with_store(gateway, exists)


def test_unauthenticated_calls_write_only_to_the_gateway_stream(gateway: Gateway) -> None:
    real = gateway.create_org()
    named = [new_id("org_") for _ in range(5)]
    before = stream_length(gateway, real)
    with gateway.client() as anonymous, gateway.client("wrong-token") as wrong:
        for org_id in [*named, real]:
            for client in (anonymous, wrong):
                response = client.post(f"/admin/orgs/{org_id}/keys", json={"name": "x"})
                assert response.status_code == 401
    assert not any(stream_exists(gateway, org_id) for org_id in named)
    assert stream_length(gateway, real) == before

    async def gateway_records(store: Store) -> list[dict[str, Any]]:
        page = await store.audit.page(None, AuditFilter(), cursor=None, limit=20)
        return [event.model_dump() for event in page.events]

    recent = with_store(gateway, gateway_records)
    denied = [event for event in recent if event["action"] == "keys.create"]
    assert len(denied) >= 12
    assert all(event["org_id"] is None and event["outcome"] == "denied" for event in denied)


def test_the_operator_on_an_org_that_does_not_exist_writes_no_stream_for_it(
    gateway: Gateway,
) -> None:
    nobody = new_id("org_")
    response = gateway.admin.post(
        f"/admin/orgs/{nobody}/keys", json={"name": "x", "role": "member"}
    )
    assert response.status_code == 404
    assert not stream_exists(gateway, nobody)
    real = gateway.create_org()
    before = stream_length(gateway, real)
    assert gateway.admin.post(f"/admin/orgs/{real}/keys", json={"name": "x"}).status_code == 400
    assert stream_length(gateway, real) == before + 1  # a refused operator call on a real org


def test_unmatched_routes_are_counted_not_recorded(gateway: Gateway) -> None:
    before = stream_length(gateway, None)
    with gateway.client() as client:
        for index in range(30):
            assert client.post(f"/nowhere/{index}").status_code == 404
            assert client.delete("/v1/nothing-here").status_code == 404
        metrics = client.get("/metrics").text
    assert stream_length(gateway, None) == before
    counted = [line for line in metrics.splitlines() if line.startswith("tunegate_http_unmatched")]
    by_method = {line.split('"')[1]: float(line.split()[-1]) for line in counted if "{" in line}
    assert by_method["POST"] >= 30
    assert by_method["DELETE"] >= 30


def test_records_past_the_retention_are_trimmed_and_the_trim_is_recorded(
    gateway: Gateway,
) -> None:
    org = gateway.create_org()
    stray = new_id("org_")  # a stream of no org, as callers could once make
    days = gateway.settings.audit_retention_days
    now = time.time()
    old_ms = int((now - (days + 1) * DAY) * 1000)
    fresh_ms = int((now - (days - 1) * DAY) * 1000)

    async def seed_and_trim(store: Store) -> tuple[int, list[dict[str, Any]], list[str]]:
        await store.redis.delete(keys.audit(org))  # only the seeded history
        for stream in (keys.audit(org), keys.audit(stray)):
            for offset in range(3):
                await store.redis.xadd(stream, {"e": SEED}, id=f"{old_ms + offset}-0")
        await store.redis.xadd(keys.audit(org), {"e": SEED}, id=f"{fresh_ms}-0")
        ctx = Context(settings=gateway.settings, store=store)
        removed = await maintenance.trim_audit(ctx, now=now)
        kept = await store.redis.xrange(keys.audit(org))
        gateway_page = await store.audit.page(None, AuditFilter(), cursor=None, limit=5)
        return (
            removed,
            [event.model_dump() for event in gateway_page.events],
            [entry_id for entry_id, _ in kept],
        )

    removed, gateway_events, kept = with_store(gateway, seed_and_trim)
    assert removed >= 6
    assert kept[0] == f"{fresh_ms}-0"  # the fresh one stays, the old ones went
    assert len(kept) >= 2 and all(int(i.split("-")[0]) > old_ms + 2 for i in kept)
    org_trim = [e for e in org_events(gateway, org) if e["action"] == "audit.trimmed"]
    assert org_trim and org_trim[0]["details"] == {"retention_days": days, "removed": 3}
    stray_trim = [e for e in gateway_events if e["details"].get("stream") == stray]
    assert stray_trim and stray_trim[0]["details"]["removed"] == 3


def org_events(gateway: Gateway, org_id: str) -> list[dict[str, Any]]:
    async def read(store: Store) -> list[dict[str, Any]]:
        page = await store.audit.page(org_id, AuditFilter(), cursor=None, limit=10)
        return [event.model_dump() for event in page.events]

    return with_store(gateway, read)
