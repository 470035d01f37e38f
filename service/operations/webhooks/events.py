"""Webhooks both ways: job-done callbacks to the org's `webhook_url`, and OpenAI's fine-tuning
webhooks to tunegate.

Callbacks: when a job ends, one delivery is recorded (its id fixed by the job and its terminal
state, so it is made once) with the exact body every attempt sends: OpenAI-style
`{"object": "event", "id", "type", "created_at", "data": <the job object>}`. Each attempt is
signed afresh with the org's secret (`domain.webhooks.delivery_headers`), sent from a worker with
a short timeout to the address `webhooks.destinations` checked just before (a destination no
longer allowed ends the delivery), and kept on the delivery; failures are retried on the
domain's schedule (exponential, jittered, over a day; `TUNEGATE_WEBHOOK_RETRY_SCALE` shrinks it
for tests) until a 2xx or a 410. The sweeper re-queues attempts whose task was lost. The secret
is the operator's to rotate (`rotate_webhook_secret`); it is returned once and never logged or
shown again.

OpenAI's webhooks, verified with `OPENAI_WEBHOOK_SECRET`, only make the job due at once: the
poll that follows reads the upstream, so a forged or replayed event can do no more than that.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from service.domain.tenancy.access import Principal
from service.domain.webhooks import signing
from service.domain.webhooks.targets import Network
from service.errors import AuthenticationFailed
from service.logging import get_logger
from service.operations.context import Context
from service.operations.jobs import cycle as job_cycle
from service.operations.jobs.views import job_json
from service.operations.tenancy.audit import record_audit
from service.operations.tenancy.orgs import get_org
from service.operations.webhooks.destinations import DestinationRefused, check_destination
from service.store import Store
from service.store.jobs import JobRecord
from service.store.webhooks import DeliveryAttempt, DeliveryRecord

DELIVERY_TIMEOUT_SECONDS = 5.0
SECRET_PREFIX = "whsec_"
NO_SECRET = "The org has no webhook secret: the operator rotates one in through the operator API."
log = get_logger(__name__)
_jitter = random.Random()


# The org's secret


async def rotate_webhook_secret(store: Store, org_id: str) -> str:
    """A new signing secret for the org's callbacks, replacing the old one at once."""
    org = await get_org(store, org_id)
    org.webhook_secret = SECRET_PREFIX + signing.new_secret().hex()
    await store.tenancy.put_org(org)
    return org.webhook_secret


# Callbacks


async def queue_job_callback(ctx: Context, record: JobRecord) -> DeliveryRecord | None:
    """Record the job-done callback and queue its first attempt (once per job and state)."""
    delivery_id = f"whdel_{record.id.removeprefix('ftjob-')}_{record.state.value}"
    event_type = signing.event_type_for(record.state)
    return await queue_callback(
        ctx, record.org_id, record.id, delivery_id, event_type, job_json(record)
    )


async def queue_callback(
    ctx: Context,
    org_id: str,
    subject_id: str,
    delivery_id: str,
    event_type: str,
    data: Mapping[str, Any],
) -> DeliveryRecord | None:
    """Record a callback about `subject_id` (a job or a sweep) and queue its first attempt;
    once per `delivery_id`."""
    org = await ctx.store.tenancy.get_org(org_id)
    if org is None or org.policy.webhook_url is None:
        return None
    now = time.time()
    event_id = signing.new_event_id()
    body = signing.event_body(event_id, event_type, int(now), data)
    delivery = DeliveryRecord(
        id=delivery_id,
        org_id=org_id,
        job_id=subject_id,
        event_id=event_id,
        event_type=event_type,
        url=str(org.policy.webhook_url),
        created_at=int(now),
        body=body.decode(),
        next_attempt_at=now,
    )
    if not await ctx.store.webhooks.create(delivery):
        return None
    await _queue_attempt(ctx, delivery)
    return delivery


async def _queue_attempt(ctx: Context, delivery: DeliveryRecord, suffix: str = "") -> None:
    attempt = len(delivery.attempts) + 1
    delay = max(0.0, (delivery.next_attempt_at or 0.0) - time.time())
    await ctx.queue.submit(
        "deliver_webhook",
        delivery.id,
        job_id=f"tg-{delivery.id}-{attempt}{suffix}",
        delay_seconds=delay,
    )


async def deliver(ctx: Context, delivery_id: str) -> str:
    """Worker: make the delivery's due attempt. Returns its status afterwards."""
    owner, lock = uuid.uuid4().hex, f"webhook:{delivery_id}"
    if not await ctx.store.files.acquire(lock, owner, round(DELIVERY_TIMEOUT_SECONDS * 3)):
        return "busy"
    try:
        delivery = await ctx.store.webhooks.get(delivery_id)
        if delivery is None or delivery.status != "pending":
            return delivery.status if delivery else "missing"
        if (delivery.next_attempt_at or 0.0) > time.time() + 1:
            return "not due"
        return await _attempt(ctx, delivery)
    finally:
        await ctx.store.files.release(lock, owner)


async def _attempt(ctx: Context, delivery: DeliveryRecord) -> str:
    org = await ctx.store.tenancy.get_org(delivery.org_id)
    secret = org.webhook_secret if org is not None else None
    number = len(delivery.attempts) + 1
    started = time.perf_counter()
    status, error, retry_after, refused = None, NO_SECRET, None, False
    if secret is not None:
        networks = ctx.settings.webhook_networks
        status, error, retry_after, refused = await _post(delivery, secret, networks)
    duration = round((time.perf_counter() - started) * 1000)
    delivery.attempts.append(
        DeliveryAttempt(
            attempt=number, at=time.time(), status_code=status, error=error, duration_ms=duration
        )
    )
    _decide(ctx, delivery, status, retry_after, give_up=secret is None or refused)
    await ctx.store.webhooks.put(delivery)
    if delivery.status == "pending":
        await _queue_attempt(ctx, delivery)
    else:
        await _audit_outcome(ctx, delivery)
    return delivery.status


async def _post(
    delivery: DeliveryRecord, secret: str, networks: tuple[Network, ...]
) -> tuple[int | None, str | None, float | None, bool]:
    """One attempt: (status, error, retry-after, refused for good)."""
    try:
        destination = await check_destination(delivery.url, networks)
    except DestinationRefused as refused:
        return None, f"Destination refused: {refused.message}", None, refused.lasting
    body = delivery.body.encode()
    headers = signing.delivery_headers(
        secret.encode(), delivery.event_id, delivery.event_type, int(time.time()), body
    )
    url = httpx.URL(delivery.url)
    headers["Host"] = url.netloc.decode("ascii")
    tls = {"sni_hostname": url.host} if url.scheme == "https" else {}
    try:
        async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_SECONDS) as client:
            response = await client.post(
                url.copy_with(host=destination.address),
                content=body,
                headers=headers,
                extensions=tls,
            )
    except httpx.HTTPError as failure:
        return None, type(failure).__name__, None, False
    retry_after = _retry_after(response.headers.get("retry-after"))
    return response.status_code, None, retry_after, False


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value or "")
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _decide(
    ctx: Context,
    delivery: DeliveryRecord,
    status: int | None,
    retry_after: float | None,
    *,
    give_up: bool,
) -> None:
    delivery.next_attempt_at = None
    if status is not None and 200 <= status < 300:
        delivery.status = "delivered"
        return
    delay = signing.next_delay(len(delivery.attempts), _jitter)
    if give_up or not signing.should_retry(status) or delay is None:
        delivery.status = "failed"
        return
    delay = max(delay * ctx.settings.webhook_retry_scale, retry_after or 0.0)
    delivery.next_attempt_at = time.time() + delay


async def _audit_outcome(ctx: Context, delivery: DeliveryRecord) -> None:
    await record_audit(
        ctx.store,
        principal=None,
        org_id=delivery.org_id,
        action=f"webhooks.{delivery.status}",
        outcome="success" if delivery.status == "delivered" else "error",
        resource_id=delivery.id,
        details={"job_id": delivery.job_id, "attempts": len(delivery.attempts)},
    )


async def requeue_stalled_deliveries(ctx: Context) -> int:
    """Sweeper: attempts overdue by a sweep interval lost their task (a worker died)."""
    now = time.time()
    stalled = await ctx.store.webhooks.due(now - ctx.settings.sweep_seconds)
    bucket = math.floor(now / ctx.settings.sweep_seconds)
    for delivery in await ctx.store.webhooks.many(stalled):
        await _queue_attempt(ctx, delivery, suffix=f"-s{bucket}")
    return len(stalled)


async def list_deliveries(ctx: Context, principal: Principal) -> list[DeliveryRecord]:
    """The org's callbacks, newest first."""
    ids = await ctx.store.webhooks.list_ids(principal.org_id or "")
    return await ctx.store.webhooks.many(ids)


# OpenAI's webhooks


async def receive_openai_webhook(
    ctx: Context, headers: Mapping[str, str], body: bytes
) -> JobRecord | None:
    """Verify an OpenAI webhook; for a fine-tuning event about one of our jobs, run the poll
    cycle now (`jobs.cycle`).
    Returns that job (None for other events)."""
    secret = ctx.settings.openai_webhook_secret
    if secret is None:
        raise AuthenticationFailed(
            "This gateway does not accept OpenAI webhooks: OPENAI_WEBHOOK_SECRET is not set.",
            code="webhooks_not_configured",
        )
    event = signing.verify_openai_webhook(
        secret.get_secret_value(), headers, body, int(time.time())
    )
    upstream_id = signing.fine_tuning_job_id(event)
    job_id = await ctx.store.jobs.job_for_upstream(upstream_id) if upstream_id else None
    if job_id is None:
        return None
    webhook_id = {name.lower(): value for name, value in headers.items()}["webhook-id"]
    if await ctx.store.webhooks.first_openai_webhook(webhook_id):
        await job_cycle.queue_cycle_now(ctx)
    return await ctx.store.jobs.get(job_id)
