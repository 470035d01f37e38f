"""Hyperparameter sweep records and the set of sweeps due for a worker.

A record is one JSON value changed only through `update`, a compare-and-set (WATCH / MULTI).
The due set is kept apart from the record so that a trial's job can make its sweep due without
contending for the record: `wake` only ever brings a sweep's time forward (ZADD LT), while the
worker advancing it first pushes it out to its next check (`claim`), so a wake that arrives
during an advance is never lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

from service.store import keys
from service.store.base import Repository, compare_and_set

SweepStatus = Literal["running", "cancelling", "succeeded", "failed", "cancelled"]
Change = Callable[["SweepRecord"], "SweepRecord | None"]


class TrialRecord(BaseModel):
    index: int
    hyperparameters: dict[str, Any]
    estimated_tokens: int | None = None
    job_id: str | None = None
    error: dict[str, Any] | None = None  # the job could not be created
    stopped: dict[str, Any] | None = None  # early stopping's decision: step, value, reference
    budget_share: int = 0  # nano-dollars of the sweep's reservation its job takes over


class SweepRecord(BaseModel):
    id: str
    org_id: str
    key_id: str | None = None
    role: str  # of the key that created it: trials are created and cancelled as that key
    created_at: int
    seq: float
    request: dict[str, Any]  # the parsed request (`SweepRequest`)
    base_model: str
    seed: int  # every trial's job seed, so trials differ only in their hyperparameters
    search_seed: int | None = None
    status: SweepStatus = "running"
    version: int = 0
    trials: list[TrialRecord] = []
    best_trial: int | None = None  # fixed once the sweep ended
    finished_at: int | None = None
    pending: list[str] = []  # finishing steps still to run once it ended
    # `validation_split`: the [training, validation] files every trial takes (`jobs.splits`),
    # named before they are written, and whether they were (or why they cannot be)
    split_files: list[str] = []
    split_made: bool = False
    split_error: dict[str, Any] | None = None
    # the reservation for every trial (`budgets.training`); the unlaunched trials' shares are
    # given back once, when the sweep ends
    budget: dict[str, Any] | None = None
    budget_released: bool = False


class SweepRepository(Repository):
    async def create(self, record: SweepRecord, due_at: float) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.sweep(record.id), record.model_dump_json())
            pipe.zadd(keys.org_sweeps(record.org_id), {record.id: record.seq})
            pipe.zadd(keys.sweeps_due(), {record.id: due_at})
            await pipe.execute()

    async def get(self, sweep_id: str) -> SweepRecord | None:
        raw = await self.redis.get(keys.sweep(sweep_id))
        return SweepRecord.model_validate_json(raw) if raw else None

    async def many(self, sweep_ids: list[str]) -> list[SweepRecord]:
        if not sweep_ids:
            return []
        raws = await self.redis.mget([keys.sweep(sweep_id) for sweep_id in sweep_ids])
        return [SweepRecord.model_validate_json(raw) for raw in raws if raw]

    async def page_ids(self, org_id: str, after: str | None, limit: int) -> tuple[list[str], bool]:
        """A page of the org's sweep ids, newest first, after `after`; and whether more follow."""
        start = 0
        if after is not None:
            rank = await self.redis.zrevrank(keys.org_sweeps(org_id), after)
            if rank is None:
                return [], False
            start = rank + 1
        ids = list(await self.redis.zrevrange(keys.org_sweeps(org_id), start, start + limit))
        return ids[:limit], len(ids) > limit

    async def update(self, sweep_id: str, change: Change) -> SweepRecord | None:
        """Apply `change` to the current record unless it moved meanwhile, then try again;
        `change` returns None to write nothing. The result is the record as stored."""

        def write(pipe: Any, old: SweepRecord, new: SweepRecord) -> None:
            new.version = old.version + 1
            pipe.set(keys.sweep(sweep_id), new.model_dump_json())

        return await compare_and_set(
            self.redis, keys.sweep(sweep_id), SweepRecord, change, write, f"Sweep {sweep_id}"
        )

    # Scheduling

    async def wake(self, sweep_id: str, at: float) -> None:
        """Due at `at`, or sooner if it already was."""
        await self.redis.zadd(keys.sweeps_due(), {sweep_id: at}, lt=True)

    async def claim(self, sweep_id: str, next_check: float) -> None:
        """Taken by a worker now: next due at `next_check` unless woken sooner."""
        await self.redis.zadd(keys.sweeps_due(), {sweep_id: next_check}, xx=True)

    async def settle(self, sweep_id: str) -> None:
        """Nothing left to do."""
        await self.redis.zrem(keys.sweeps_due(), sweep_id)

    async def due(self, until: float, limit: int) -> list[str]:
        """Sweeps due by `until`, most overdue first."""
        found = await self.redis.zrangebyscore(keys.sweeps_due(), "-inf", until, start=0, num=limit)
        return list(found)
