"""Job-done callbacks (one record per delivery, every attempt kept) and the OpenAI webhooks
already acted on.

A delivery's id is fixed by its job and terminal state, so finishing a job twice (a worker that
died after sending) never makes a second callback. Records live `RETENTION_SECONDS`; the org's
list keeps the newest `MAX_LISTED`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from service.store import keys
from service.store.base import Repository

RETENTION_SECONDS = 30 * 86_400
MAX_LISTED = 1000
OPENAI_SEEN_SECONDS = 7 * 86_400

DeliveryStatus = Literal["pending", "delivered", "failed"]


class DeliveryAttempt(BaseModel):
    attempt: int
    at: float
    status_code: int | None = None
    error: str | None = None
    duration_ms: int


class DeliveryRecord(BaseModel):
    id: str
    org_id: str
    job_id: str
    event_id: str
    event_type: str
    url: str
    created_at: int
    body: str  # the exact JSON sent on every attempt
    status: DeliveryStatus = "pending"
    attempts: list[DeliveryAttempt] = []
    next_attempt_at: float | None = None


class WebhookRepository(Repository):
    async def create(self, record: DeliveryRecord) -> bool:
        """Store a new delivery; False when one with this id exists already."""
        if not await self.redis.set(
            keys.webhook_delivery(record.id),
            record.model_dump_json(),
            nx=True,
            ex=RETENTION_SECONDS,
        ):
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.org_webhook_deliveries(record.org_id), {record.id: record.created_at})
            pipe.zremrangebyrank(keys.org_webhook_deliveries(record.org_id), 0, -MAX_LISTED - 1)
            self._queue_due(pipe, record)
            await pipe.execute()
        return True

    async def put(self, record: DeliveryRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.webhook_delivery(record.id), record.model_dump_json(), keepttl=True)
            self._queue_due(pipe, record)
            await pipe.execute()

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        raw = await self.redis.get(keys.webhook_delivery(delivery_id))
        return DeliveryRecord.model_validate_json(raw) if raw else None

    async def list_ids(self, org_id: str) -> list[str]:
        """Newest first."""
        return list(await self.redis.zrevrange(keys.org_webhook_deliveries(org_id), 0, -1))

    async def many(self, delivery_ids: list[str]) -> list[DeliveryRecord]:
        if not delivery_ids:
            return []
        raws = await self.redis.mget([keys.webhook_delivery(i) for i in delivery_ids])
        return [DeliveryRecord.model_validate_json(raw) for raw in raws if raw]

    async def due(self, until: float, limit: int = 1000) -> list[str]:
        found = await self.redis.zrangebyscore(
            keys.webhooks_due(), "-inf", until, start=0, num=limit
        )
        return list(found)

    async def first_openai_webhook(self, webhook_id: str) -> bool:
        """True the first time an OpenAI `webhook-id` is seen (OpenAI retries deliveries)."""
        key = keys.openai_webhook(webhook_id)
        return bool(await self.redis.set(key, "1", nx=True, ex=OPENAI_SEEN_SECONDS))

    @staticmethod
    def _queue_due(pipe: object, record: DeliveryRecord) -> None:
        if record.status == "pending" and record.next_attempt_at is not None:
            pipe.zadd(keys.webhooks_due(), {record.id: record.next_attempt_at})  # type: ignore[attr-defined]
        else:
            pipe.zrem(keys.webhooks_due(), record.id)  # type: ignore[attr-defined]
