"""Eval records: one JSON value per eval, and each org's evals by creation time."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from service.store import keys
from service.store.base import Repository


class EvalRecord(BaseModel):
    id: str
    org_id: str
    created_at: int
    seq: float
    name: str
    metadata: dict[str, str] = {}
    data_source_config: dict[str, Any]
    testing_criteria: list[dict[str, Any]]


class EvalRepository(Repository):
    async def put(self, record: EvalRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.eval_record(record.id), record.model_dump_json())
            pipe.zadd(keys.org_evals(record.org_id), {record.id: record.seq})
            await pipe.execute()

    async def get(self, eval_id: str) -> EvalRecord | None:
        raw = await self.redis.get(keys.eval_record(eval_id))
        return EvalRecord.model_validate_json(raw) if raw else None

    async def page(
        self, org_id: str, after: str | None, limit: int, newest_first: bool
    ) -> tuple[list[EvalRecord], bool]:
        """A page of the org's evals after `after`; and whether more follow."""
        key, start = keys.org_evals(org_id), 0
        rank = self.redis.zrevrank if newest_first else self.redis.zrank
        if after is not None:
            found = await rank(key, after)
            if found is None:
                return [], False
            start = found + 1
        read = self.redis.zrevrange if newest_first else self.redis.zrange
        ids = list(await read(key, start, start + limit))
        raws = await self.redis.mget([keys.eval_record(i) for i in ids[:limit]]) if ids else []
        return [EvalRecord.model_validate_json(raw) for raw in raws if raw], len(ids) > limit

    async def delete(self, record: EvalRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.eval_record(record.id))
            pipe.zrem(keys.org_evals(record.org_id), record.id)
            await pipe.execute()
