"""The org's tuned models and model aliases, and the cached view the completion proxy reads.

Tuned models live in one hash per org (model id -> record), aliases in another (name -> model
id). The proxy's view of a caller — its key record, its org (policy included), and the org's
tuned models and aliases — costs one pipelined round trip and is then kept in this process for
`view_seconds` (`TUNEGATE_CALLER_CACHE_SECONDS`). Every write to a key, an org or its policy, a
model or an alias drops the org's views in the writing process before it returns and, by a
pub/sub notice (`invalidation`), in every other process as the notice arrives; views are kept
only while this process's subscription is live, and their lifetime is the backstop should a
notice be lost. A view loaded while a notice arrived is not kept. A key's org never changes, so
after a key's first lookup its view is always one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from redis.asyncio import Redis

from service.store import keys
from service.store.base import Repository
from service.store.tenancy.invalidation import Listener, publish
from service.store.tenancy.orgs import KeyRecord, OrgRecord

VIEW_TTL_SECONDS = 1.0
MAX_REMEMBERED_KEYS = 100_000


class TunedModelRecord(BaseModel):
    id: str
    org_id: str
    base_model: str
    job_id: str | None = None
    created: int


@dataclass(frozen=True, slots=True)
class CallerView:
    key: KeyRecord
    org: OrgRecord
    models: dict[str, TunedModelRecord]
    aliases: dict[str, str]


class ModelRepository(Repository):
    def __init__(self, redis: Redis, view_seconds: float = VIEW_TTL_SECONDS) -> None:
        super().__init__(redis)
        self.view_seconds = view_seconds
        self._views: dict[str, tuple[float, CallerView]] = {}
        self._org_of_key: dict[str, str] = {}
        self._generation = 0  # moves on every drop, so a view loaded meanwhile is not kept
        self._listener = Listener(redis, self.forget_org, self.forget_all)
        # told of every drop too (the org's id, None for all): state kept per org elsewhere
        self.observers: list[Callable[[str | None], None]] = []

    @property
    def notices_live(self) -> bool:
        """Whether this process hears every org's notices now."""
        return self._listener.live

    async def _write(self, org_id: str, queue: Callable[[Any], None]) -> Any:
        """Queue one write and the org's notice in a transaction; the write's answer."""
        async with self.redis.pipeline(transaction=True) as pipe:
            queue(pipe)
            publish(pipe, org_id)
            answer, _ = await pipe.execute()
        self.forget_org(org_id)
        return answer

    # Tuned models

    async def put_model(self, record: TunedModelRecord) -> None:
        value = record.model_dump_json()
        await self._write(
            record.org_id, lambda pipe: pipe.hset(keys.org_models(record.org_id), record.id, value)
        )

    async def get_model(self, org_id: str, model_id: str) -> TunedModelRecord | None:
        raw = await self.redis.hget(keys.org_models(org_id), model_id)
        return TunedModelRecord.model_validate_json(raw) if raw else None

    async def list_models(self, org_id: str) -> list[TunedModelRecord]:
        raws = await self.redis.hvals(keys.org_models(org_id))
        records = [TunedModelRecord.model_validate_json(raw) for raw in raws]
        return sorted(records, key=lambda record: (record.created, record.id))

    async def remove_model(self, org_id: str, model_id: str) -> bool:
        return bool(
            await self._write(org_id, lambda pipe: pipe.hdel(keys.org_models(org_id), model_id))
        )

    # Aliases

    async def put_alias(self, org_id: str, name: str, model_id: str) -> None:
        await self._write(org_id, lambda pipe: pipe.hset(keys.org_aliases(org_id), name, model_id))

    async def list_aliases(self, org_id: str) -> dict[str, str]:
        return dict(await self.redis.hgetall(keys.org_aliases(org_id)))

    async def remove_alias(self, org_id: str, name: str) -> bool:
        return bool(
            await self._write(org_id, lambda pipe: pipe.hdel(keys.org_aliases(org_id), name))
        )

    # The proxy's cached view

    async def caller(self, key_id: str) -> CallerView | None:
        """The view for a key id (None when no such key), at most `view_seconds` old."""
        now = time.monotonic()
        cached = self._views.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        self._listener.ensure_started()
        generation = self._generation
        view = await self._load(key_id)
        if view is None:
            self._views.pop(key_id, None)
            return None
        if len(self._org_of_key) >= MAX_REMEMBERED_KEYS:
            self._org_of_key.clear()
        self._org_of_key[key_id] = view.org.id
        if self._listener.live and generation == self._generation:
            self._views[key_id] = (now + self.view_seconds, view)
        return view

    def forget_org(self, org_id: str) -> None:
        self._generation += 1
        stale = [key_id for key_id, (_, view) in self._views.items() if view.org.id == org_id]
        for key_id in stale:
            self._views.pop(key_id, None)
        for observer in self.observers:
            observer(org_id)

    def forget_all(self) -> None:
        self._generation += 1
        self._views.clear()
        for observer in self.observers:
            observer(None)

    async def close(self) -> None:
        await self._listener.stop()

    async def _load(self, key_id: str) -> CallerView | None:
        org_id = self._org_of_key.get(key_id)
        if org_id is None:
            raw_key = await self.redis.get(keys.api_key(key_id))
            if raw_key is None:
                return None
            org_id = KeyRecord.model_validate_json(raw_key).org_id
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.api_key(key_id))
            pipe.get(keys.org(org_id))
            pipe.hgetall(keys.org_models(org_id))
            pipe.hgetall(keys.org_aliases(org_id))
            raw_key, raw_org, models, aliases = await pipe.execute()
        if raw_key is None or raw_org is None:
            return None
        return CallerView(
            key=KeyRecord.model_validate_json(raw_key),
            org=OrgRecord.model_validate_json(raw_org),
            models={k: TunedModelRecord.model_validate_json(v) for k, v in models.items()},
            aliases=dict(aliases),
        )
