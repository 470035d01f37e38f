"""Waiting jobs get their slots a batch at a time: the whole line in FIFO order when the org
has no limit, exactly as many as the limit allows when it has one."""

from __future__ import annotations

import time
from typing import Any

from service.domain.jobs.states import JobState
from service.operations.context import Context
from service.operations.jobs.slots import promote_org, start_at
from service.store import keys
from service.store.jobs import PROMOTE_BATCH, JobRecord
from tests.support import with_jobs

WAITING = PROMOTE_BATCH * 2 + 6


def waiting_job(index: int) -> JobRecord:
    return JobRecord(
        id=f"ftjob-w{index:03d}",
        org_id="org-line",
        created_at=1_800_000_000,
        seq=1_800_000_000 + index,
        request={"model": "gpt-4o-mini", "training_file": "file-x"},
        base_model="gpt-4o-mini",
        seed=1,
        state=JobState.WAITING_SLOT,
    )


def scenario(run: Any) -> Any:
    return with_jobs([waiting_job(index) for index in range(WAITING)], run)


def test_without_a_limit_the_whole_line_starts_in_order() -> None:
    async def run(ctx: Context) -> tuple[list[str], int]:
        started = await promote_org(ctx, "org-line")
        return [job.id for job in started], await ctx.store.jobs.waiting_count("org-line")

    started, left = scenario(run)
    assert started == [waiting_job(index).id for index in range(WAITING)]
    assert left == 0


def test_a_limit_starts_exactly_as_many_as_it_allows() -> None:
    limit = PROMOTE_BATCH + 8

    async def run(ctx: Context) -> list[int]:
        sizes = []
        for _ in range(3):
            batch = await ctx.store.jobs.promote("org-line", limit, start_at(time.time()))
            sizes.append(len(batch))
        return sizes

    assert scenario(run) == [PROMOTE_BATCH, 8, 0]


def test_without_a_limit_a_ready_job_starts_in_the_same_write_and_never_joins_the_line() -> None:
    from service.operations.jobs.runner import _files_ready

    async def run(ctx: Context) -> tuple[JobState, float | None, bool, int]:
        record = waiting_job(999).model_copy(update={"state": JobState.WAITING_FILES})
        await ctx.store.jobs.create(record, None)
        started = await _files_ready(ctx, record)
        assert started is not None
        waiting = await ctx.store.redis.zrange(keys.org_jobs_waiting("org-line"), 0, -1)
        stored = await ctx.store.jobs.get(record.id)
        assert stored is not None and stored.state == started.state
        return started.state, started.due_at, record.id in waiting, len(waiting)

    state, due_at, joined, waiting = scenario(run)
    assert state == JobState.SUBMITTING and due_at is not None
    assert not joined and waiting == WAITING  # the line as it was


def test_many_records_change_in_one_transaction_and_unchanged_ones_stay() -> None:
    async def run(ctx: Context) -> list[tuple[int, float | None]]:
        ids = [waiting_job(index).id for index in range(3)]

        def due(record: JobRecord) -> JobRecord:
            record.due_at = 42.0
            return record

        changes = {ids[0]: due, ids[1]: lambda record: None, ids[2]: due, "ftjob-none": due}
        await ctx.store.jobs.update_many(changes)
        found = [await ctx.store.jobs.get(job_id) for job_id in ids]
        assert await ctx.store.jobs.get("ftjob-none") is None  # no such job: nothing written
        return [(record.version, record.due_at) for record in found if record is not None]

    (first, second, third) = scenario(run)
    assert first[1] == third[1] == 42.0 and first[0] == third[0] == second[0] + 1
    assert second[1] is None
