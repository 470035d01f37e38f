"""What one walk of the poll cycle writes for a listed job: a new status that is not an end is
recorded at once (with when it was seen and at what interval), an end too (its last events and
checkpoints follow as its first finishing step), and only one worker process walks for a tick
of the cycle's clock."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import fakeredis

from service.config import Settings
from service.domain.jobs.states import JobEvent, JobState
from service.operations.context import Context
from service.operations.jobs.create import apply_control
from service.operations.jobs.cycle import _listed, run_poll_cycle
from service.operations.jobs.watch import Snapshot, observe_poll
from service.store import Store
from service.store.jobs import JobRecord, JobRepository
from service.upstream import FineTuningJob

NOW = 1_800_000_000.0


def record(state: JobState, status: str) -> JobRecord:
    return JobRecord(
        id="ftjob-ours",
        org_id="org-a",
        created_at=int(NOW) - 60,
        seq=NOW - 60,
        request={"model": "gpt-4o-mini", "training_file": "file-x"},
        base_model="gpt-4o-mini",
        seed=1,
        state=state,
        upstream_id="ftjob-up",
        upstream_status=status,
    )


def listed_now(current: JobRecord, job: FineTuningJob | None) -> JobRecord | None:
    """What a walk at NOW makes of the record, having read the job at NOW (None: not found)."""
    return _listed(current, job=job, due_at=NOW, interval=5.0, seen_at=NOW, read_at=NOW)


def listed(status: str, **more: Any) -> FineTuningJob:
    return FineTuningJob.model_validate(
        {
            "id": "ftjob-up",
            "object": "fine_tuning.job",
            "created_at": int(NOW) - 60,
            "model": "gpt-4o-mini",
            "organization_id": "org-up",
            "result_files": [],
            "seed": 1,
            "status": status,
            "training_file": "file-up",
            "validation_file": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "trained_tokens": None,
            "error": None,
            "hyperparameters": {"n_epochs": 3},
            **more,
        }
    )


def test_a_new_status_is_recorded_by_the_walk_itself() -> None:
    job = listed("running")

    seen_at = NOW - 0.4  # its page was read before the walk ended: the change is dated then
    after = _listed(
        record(JobState.QUEUED, "queued"),
        job=job,
        due_at=NOW,
        interval=5.0,
        seen_at=seen_at,
        read_at=NOW - 0.5,
    )

    assert after is not None
    assert after.state == JobState.RUNNING
    assert after.upstream_status == "running"
    assert after.history == [{"state": "running", "at": seen_at, "poll_delay": 5.0}]
    assert after.listed == job.model_dump(mode="json")  # its poll reads only the events
    assert after.due_at == NOW


def test_an_end_is_recorded_by_the_walk_and_its_last_events_follow_first() -> None:
    job = listed("succeeded", fine_tuned_model="ft:gpt-4o-mini:x", trained_tokens=100)

    after = listed_now(record(JobState.RUNNING, "running"), job)

    assert after is not None
    assert after.state == JobState.SUCCEEDED
    assert after.upstream_status == "succeeded"
    assert after.fine_tuned_model == "ft:gpt-4o-mini:x"
    assert after.trained_tokens == 100
    assert after.history == [{"state": "succeeded", "at": NOW, "poll_delay": 5.0}]
    assert after.pending[:2] == ["promote", "sync"]  # events and checkpoints before the rest
    assert after.pending[-1] == "callback"
    assert (after.listed or {})["status"] == "succeeded"  # `sync` reads no job of its own
    assert after.due_at == NOW


def test_a_job_the_walk_did_not_list_is_only_made_due() -> None:
    after = listed_now(record(JobState.QUEUED, "queued"), None)

    assert after is not None
    assert after.state == JobState.QUEUED
    assert after.listed is None
    assert after.due_at == NOW


def test_a_job_that_ended_meanwhile_is_not_written() -> None:
    ended = record(JobState.CANCELLED, "cancelled")

    assert (
        _listed(ended, job=listed("running"), due_at=NOW, interval=5.0, seen_at=NOW, read_at=NOW)
        is None
    )


def test_one_worker_process_walks_for_a_tick() -> None:
    async def claims() -> list[bool]:
        jobs = JobRepository(fakeredis.FakeAsyncRedis(decode_responses=True))
        tick = int(time.time() / 2.0)
        return [
            await jobs.claim_cycle_tick(tick, 2.0),
            await jobs.claim_cycle_tick(tick, 2.0),
            await jobs.claim_cycle_tick(tick + 1, 2.0),
            await jobs.claim_cycle_tick(tick, 5.0),
        ]

    assert asyncio.run(claims()) == [True, False, True, True]


def test_a_timed_walk_keeps_no_gap_after_it_and_a_webhooks_walk_does() -> None:
    # a timed walk's next tick may come sooner than a second after it (its interval shrinks as
    # jobs end); walks run for webhooks coalesce instead, at most one a second
    async def next_claims() -> tuple[bool, bool]:
        ctx = Context(Settings(), Store("redis://unused"))
        ctx.store.jobs = JobRepository(fakeredis.FakeAsyncRedis(decode_responses=True))
        await run_poll_cycle(ctx, gap_seconds=0.0)  # nothing watched: claim, walk, end
        await asyncio.sleep(0.05)
        after_timed = await ctx.store.jobs.claim_cycle("next", 60.0)
        await ctx.store.jobs.end_cycle("next", 0.0)
        await asyncio.sleep(0.05)
        await run_poll_cycle(ctx)
        await asyncio.sleep(0.05)
        return after_timed, await ctx.store.jobs.claim_cycle("next", 60.0)

    assert asyncio.run(next_claims()) == (True, False)


def test_a_poll_never_undoes_a_later_walks_status() -> None:
    queued, running = listed("queued"), listed("running")
    polled = Snapshot(
        queued, [{"id": "ftevent-1", "message": "m"}], None, queued.model_dump(mode="json")
    )
    # While the poll read the events of the job listed as queued, a later walk saw it running.
    current = _listed(
        record(JobState.QUEUED, "queued"),
        job=running,
        due_at=NOW,
        interval=5,
        seen_at=NOW,
        read_at=NOW,
    )
    assert current is not None

    after = observe_poll(current, polled, NOW + 1)

    assert after.state == JobState.RUNNING
    assert after.last_event_id == "ftevent-1"
    assert after.listed == running.model_dump(mode="json")  # the later walk's poll still follows
    assert after.due_at == NOW


def paused_after(read_at: float) -> JobRecord:
    """A running job paused through the gateway after an upstream read began at `read_at`."""
    current = apply_control(record(JobState.RUNNING, "running"), JobEvent.PAUSE)
    assert current.state == JobState.PAUSED and current.controlled_at is not None
    assert current.controlled_at > read_at
    return current


def test_a_poll_that_read_before_a_pause_does_not_put_running_back() -> None:
    read_at = time.time() - 1
    running = listed("running")
    polled = Snapshot(running, [{"id": "ftevent-2", "message": "m"}], None, None, read_at)

    after = observe_poll(paused_after(read_at), polled, time.time())

    assert after.state == JobState.PAUSED
    assert after.last_event_id == "ftevent-2"  # its events still count
    assert after.due_at is not None  # a poll that reads after the pause follows


def test_a_poll_that_read_after_a_pause_records_what_the_upstream_says() -> None:
    current = paused_after(time.time() - 1)
    polled = Snapshot(listed("running"), [], None, None, time.time() + 1)

    after = observe_poll(current, polled, time.time() + 1)

    assert after.state == JobState.RUNNING  # resumed elsewhere: the upstream is the truth


def test_a_walk_that_listed_before_a_pause_only_makes_the_job_due() -> None:
    read_at = time.time() - 1
    current = paused_after(read_at)

    after = _listed(
        current, job=listed("running"), due_at=NOW, interval=5.0, seen_at=NOW, read_at=read_at
    )

    assert after is not None
    assert after.state == JobState.PAUSED
    assert after.listed is None  # the poll retrieves it afresh
