"""Orgs and their keys. A key record holds the secret's hash, never the secret.

Every write also tells each process to drop its cached views of the org (`invalidation`), and
drops them in this process before it returns (`on_change`), so a revoked key or a new policy
holds from the next request here and within moments everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from service.domain.tenancy.access import Role
from service.domain.tenancy.policy import Policy
from service.store import keys
from service.store.base import Repository
from service.store.tenancy.invalidation import publish


class OrgRecord(BaseModel):
    id: str
    name: str
    policy: Policy
    created_at: int
    webhook_secret: str | None = None


class KeyRecord(BaseModel):
    id: str
    org_id: str
    name: str
    role: Role
    secret_hash: str
    created_at: int
    revoked_at: int | None = None
    extra: dict[str, str] = Field(default_factory=dict)


class TenancyRepository(Repository):
    def __init__(self, redis: Redis, on_change: Callable[[str], None] = lambda _: None) -> None:
        super().__init__(redis)
        self.on_change = on_change

    async def put_org(self, org: OrgRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.org(org.id), org.model_dump_json())
            pipe.zadd(keys.orgs(), {org.id: org.created_at})
            publish(pipe, org.id)
            await pipe.execute()
        self.on_change(org.id)

    async def get_org(self, org_id: str) -> OrgRecord | None:
        raw = await self.redis.get(keys.org(org_id))
        return OrgRecord.model_validate_json(raw) if raw else None

    async def list_orgs(self) -> list[OrgRecord]:
        ids = await self.redis.zrange(keys.orgs(), 0, -1)
        if not ids:
            return []
        raws = await self.redis.mget([keys.org(org_id) for org_id in ids])
        return [OrgRecord.model_validate_json(raw) for raw in raws if raw]

    async def put_key(self, record: KeyRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.api_key(record.id), record.model_dump_json())
            pipe.zadd(keys.org_keys(record.org_id), {record.id: record.created_at})
            publish(pipe, record.org_id)
            await pipe.execute()
        self.on_change(record.org_id)

    async def get_key(self, key_id: str) -> KeyRecord | None:
        raw = await self.redis.get(keys.api_key(key_id))
        return KeyRecord.model_validate_json(raw) if raw else None

    async def list_keys(self, org_id: str) -> list[KeyRecord]:
        ids = await self.redis.zrange(keys.org_keys(org_id), 0, -1)
        if not ids:
            return []
        raws = await self.redis.mget([keys.api_key(key_id) for key_id in ids])
        return [KeyRecord.model_validate_json(raw) for raw in raws if raw]
