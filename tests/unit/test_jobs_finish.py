"""An ended job's finishing steps: a worker that dies part-way leaves the rest to the next one,
the steps that must not run twice run once, and the record is written once at the end."""

from __future__ import annotations

import time
from typing import Any

import pytest

from service.domain.jobs.states import JobState
from service.operations.context import Context
from service.operations.jobs import finish as job_finish
from service.operations.jobs.records import steps_for
from service.store import keys
from service.store.jobs import JobRecord
from tests.support import with_jobs

ORG = "org-finish"


def ended_job(metadata: dict[str, str] | None = None) -> JobRecord:
    record = JobRecord(
        id="ftjob-finish1",
        org_id=ORG,
        created_at=1_800_000_000,
        seq=1_800_000_000,
        request={"model": "gpt-4o-mini", "training_file": "file-x", "metadata": metadata},
        base_model="gpt-4o-mini",
        seed=1,
        state=JobState.FAILED,  # at the gateway: it never reached the upstream
        error={"code": "invalid_training_file", "message": "gone", "param": "training_file"},
        due_at=time.time(),
    )
    record.pending = steps_for(record, observed=False)
    return record


def test_a_finish_cut_short_runs_the_rest_once_and_writes_the_record_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = ended_job()
    assert record.pending == ["promote", "audit", "callback"]
    callbacks: list[str] = []

    async def callback_dies(ctx: Context, current: JobRecord) -> None:
        raise ConnectionError("the worker died here")

    async def callback(ctx: Context, current: JobRecord) -> None:
        callbacks.append(current.id)

    async def run(ctx: Context) -> dict[str, Any]:
        raw = ctx.store.redis
        monkeypatch.setitem(job_finish.STEPS, "callback", callback_dies)
        with pytest.raises(ConnectionError):
            await job_finish.finish(ctx, record)
        cut_short = await ctx.store.jobs.get(record.id)
        marked = await ctx.store.jobs.steps_done(record.id)
        monkeypatch.setitem(job_finish.STEPS, "callback", callback)
        assert cut_short is not None
        finished = await job_finish.finish(ctx, cut_short)
        return {
            "cut_short": cut_short,
            "marked": marked,
            "finished": finished,
            "audits": await raw.xlen(keys.audit(ORG)),
            "marks_left": await raw.exists(keys.job_steps_done(record.id)),
        }

    found = with_jobs([record], run)
    cut_short: JobRecord = found["cut_short"]
    assert cut_short.pending == record.pending  # nothing crossed off in the record yet
    assert cut_short.version == record.version  # and not written at all
    assert cut_short.due_at is not None  # still due: the next worker takes it
    assert found["marked"] == {"audit"}
    finished: JobRecord = found["finished"]
    assert finished.pending == [] and finished.due_at is None
    assert finished.version == record.version + 1  # one write for the whole finish
    assert found["audits"] == 1  # the audit entry written once, across both runs
    assert callbacks == [record.id]
    assert found["marks_left"] == 0  # the marks go with the last step crossed off


def test_a_trial_is_shown_finished_before_its_sweep_is_woken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = ended_job(metadata={"tunegate_sweep": "sweep-x"})
    assert record.pending[-1] == "sweep"
    seen: list[list[str]] = []

    async def sweep(ctx: Context, current: JobRecord) -> None:
        stored = await ctx.store.jobs.get(current.id)
        assert stored is not None
        seen.append(stored.pending)

    async def run(ctx: Context) -> JobRecord | None:
        monkeypatch.setitem(job_finish.STEPS, "sweep", sweep)
        return await job_finish.finish(ctx, record)

    finished = with_jobs([record], run)
    assert seen == [["sweep"]]  # what the sweep's view reads as a finished trial
    assert finished is not None and finished.pending == []
