"""Evals and their runs: one JSON value each, an org's evals and an eval's runs by creation
time, and each run's samples and output items by item index."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from redis.exceptions import WatchError

from service.store import keys
from service.store.base import Repository

R = TypeVar("R", bound=BaseModel)


async def _page(
    redis: Any,
    index: str,
    record_key: Callable[[str], str],
    model: type[R],
    after: str | None,
    limit: int,
    newest_first: bool,
) -> tuple[list[R], bool]:
    """A page of the records a sorted set indexes, after `after`; and whether more follow."""
    start = 0
    if after is not None:
        found = await (redis.zrevrank if newest_first else redis.zrank)(index, after)
        if found is None:
            return [], False
        start = found + 1
    ids = list(
        await (redis.zrevrange if newest_first else redis.zrange)(index, start, start + limit)
    )
    raws = await redis.mget([record_key(i) for i in ids[:limit]]) if ids else []
    return [model.model_validate_json(raw) for raw in raws if raw], len(ids) > limit


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
        return await _page(
            self.redis,
            keys.org_evals(org_id),
            keys.eval_record,
            EvalRecord,
            after,
            limit,
            newest_first,
        )

    async def delete(self, record: EvalRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.eval_record(record.id))
            pipe.zrem(keys.org_evals(record.org_id), record.id)
            await pipe.execute()


class RunRecord(BaseModel):
    id: str
    eval_id: str
    org_id: str
    key_id: str
    created_at: int
    seq: float
    name: str
    metadata: dict[str, str] = {}
    model: str | None = None
    data_source: dict[str, Any]
    status: str = "queued"  # queued, in_progress, completed, canceled, failed
    error: dict[str, Any] | None = None
    result_counts: dict[str, int] = {}
    per_testing_criteria_results: list[dict[str, Any]] = []
    per_model_usage: list[dict[str, Any]] = []
    usage: dict[str, int] = {}


class RunRepository(Repository):
    async def put(self, record: RunRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.eval_run(record.id), record.model_dump_json())
            pipe.zadd(keys.eval_runs(record.eval_id), {record.id: record.seq})
            await pipe.execute()

    async def put_new(self, record: RunRecord) -> bool:
        """Store a run under an id no run has yet; False if one already has it."""
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(keys.eval_run(record.id))
                if await pipe.exists(keys.eval_run(record.id)):
                    return False
                pipe.multi()
                pipe.set(keys.eval_run(record.id), record.model_dump_json())
                pipe.zadd(keys.eval_runs(record.eval_id), {record.id: record.seq})
                await pipe.execute()
            except WatchError:
                return False
        return True

    async def get(self, run_id: str) -> RunRecord | None:
        raw = await self.redis.get(keys.eval_run(run_id))
        return RunRecord.model_validate_json(raw) if raw else None

    async def page(
        self, eval_id: str, after: str | None, limit: int, newest_first: bool
    ) -> tuple[list[RunRecord], bool]:
        """A page of the eval's runs after `after`; and whether more follow."""
        return await _page(
            self.redis,
            keys.eval_runs(eval_id),
            keys.eval_run,
            RunRecord,
            after,
            limit,
            newest_first,
        )

    async def delete(self, record: RunRecord) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.eval_run(record.id), keys.eval_run_samples(record.id))
            pipe.delete(keys.eval_run_items(record.id))
            pipe.zrem(keys.eval_runs(record.eval_id), record.id)
            await pipe.execute()

    async def set_status(self, run_id: str, status: str, unless: tuple[str, ...]) -> bool:
        """Move the run to `status` unless it already is in one of `unless`."""
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(keys.eval_run(run_id))
                    raw = await pipe.get(keys.eval_run(run_id))
                    if not raw:
                        return False
                    record = RunRecord.model_validate_json(raw)
                    if record.status in unless:
                        return False
                    record.status = status
                    pipe.multi()
                    pipe.set(keys.eval_run(run_id), record.model_dump_json())
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def sample(self, run_id: str, index: int) -> dict[str, Any] | None:
        raw = await self.redis.hget(keys.eval_run_samples(run_id), str(index))
        return orjson.loads(raw) if raw else None

    async def keep_sample(self, run_id: str, index: int, sample: dict[str, Any]) -> None:
        await self.redis.hsetnx(keys.eval_run_samples(run_id), str(index), orjson.dumps(sample))

    async def items(self, run_id: str) -> dict[int, dict[str, Any]]:
        raw = await self.redis.hgetall(keys.eval_run_items(run_id))
        return {int(index): orjson.loads(value) for index, value in raw.items()}

    async def keep_item(self, run_id: str, index: int, item: dict[str, Any]) -> None:
        await self.redis.hset(keys.eval_run_items(run_id), str(index), orjson.dumps(item))

    async def beat(self, run_id: str, at: float) -> None:
        await self.redis.zadd(keys.eval_runs_active(), {run_id: at})

    async def stale(self, before: float) -> list[str]:
        return list(await self.redis.zrangebyscore(keys.eval_runs_active(), 0, before))

    async def settle(self, run_id: str) -> None:
        await self.redis.zrem(keys.eval_runs_active(), run_id)

    async def take_slot(
        self, org_id: str, holder: str, limit: int, now: float, stale_before: float
    ) -> bool:
        """One of the org's `limit` slots for `holder`, if one is free; slots taken before
        `stale_before` (by a worker that died) are free again."""
        key = keys.org_eval_slots(org_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    await pipe.zremrangebyscore(key, 0, stale_before)
                    if await pipe.zcard(key) >= limit:
                        await pipe.reset()
                        return False
                    pipe.multi()
                    pipe.zadd(key, {holder: now})
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def give_slot(self, org_id: str, holder: str) -> None:
        await self.redis.zrem(keys.org_eval_slots(org_id), holder)
