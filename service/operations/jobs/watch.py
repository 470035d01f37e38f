"""Watching a job the upstream holds, one poll at a time: no worker ever sleeps inside a job.

The poll cycle (`jobs.cycle`) decides when a job is polled, and usually hands the poll the job
as the upstream's list showed it (`JobRecord.listed`); only a job the list walk did not reach is
retrieved on its own. A poll reads the events after the last one stored (pages come newest first;
`polling.new_events` keeps the new ones, oldest first and each once), and the checkpoints when
an event reports one or the job has ended. The events are appended in the same transaction that
records the last one's id, so a retried poll never stores one twice; a poll whose listed copy a
later walk replaced meanwhile, or one that began before a pause, resume or cancel, stores only
its events, never its older status. A job still running is
due again only when the cycle says so (`due_at` stays unset). Every call draws from the upstream
budget at poll priority. Upstream ids in messages and checkpoints are shown as tunegate's.
A job whose create took more than one attempt also looks for a late twin on each poll.
`sync_now` runs an ended job's `sync` step (this poll) for a caller who asks for its events or
checkpoints before a worker got to it, under the job's lock.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from service.domain.jobs.polling import new_events
from service.domain.jobs.states import JobState, is_terminal, observe
from service.operations.context import Context
from service.operations.jobs.lock import job_lock
from service.operations.jobs.records import (
    copy_upstream,
    crossed_off,
    ended,
    register_model,
    saw,
)
from service.operations.jobs.submit import cancel_late_twins
from service.operations.sweeps import schedule as sweep_schedule
from service.operations.upstream_rate import Priority, within_budget
from service.store.jobs import JobRecord
from service.upstream import FineTuningJob

EVENT_PAGE = 100
SYNC_WAIT_SECONDS = 0.25  # `sync_now`: how often it looks again while a worker holds the job
SYNC_WAIT_TRIES = 120
ENDED = frozenset({"succeeded", "failed", "cancelled"})
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Snapshot:
    job: FineTuningJob
    events: list[dict[str, Any]]  # new since the last poll, oldest first, as callers see them
    checkpoints: list[dict[str, Any]] | None  # None: not fetched this time
    listed: dict[str, Any] | None = None  # the walk's copy the poll used, if any
    read_at: float = 0.0  # when the poll began reading the upstream


async def poll(
    ctx: Context, record: JobRecord, *, cross_off: Sequence[str] = ()
) -> JobRecord | None:
    """Read the upstream and record what it says; the next poll is due after the delay. With
    `cross_off`, finishing steps are crossed off in the same write (the `sync` step)."""
    snapshot = await fetch(ctx, record)
    await cancel_late_twins(ctx, record)
    if not (record.state == JobState.SUCCEEDED and record.fine_tuned_model):
        await register_model(ctx, record, snapshot.job)  # else registered when it was recorded
    cross = crossed_off(list(cross_off)) if cross_off else None

    def observed(current: JobRecord) -> JobRecord | None:
        current = observe_poll(current, snapshot, time.time())
        return cross(current) if cross is not None else current

    updated = await ctx.store.jobs.update(
        record.id,
        observed,
        events=snapshot.events,
        checkpoints=snapshot.checkpoints,
    )
    if updated is not None and any(event.get("type") == "metrics" for event in snapshot.events):
        await sweep_schedule.job_changed(ctx, updated)  # a sweep may stop this trial early
    return updated


async def fetch(ctx: Context, record: JobRecord) -> Snapshot:
    upstream_id, read_at = record.upstream_id or "", time.time()
    if record.listed is not None:
        job = FineTuningJob.model_validate(record.listed)
    else:
        job = await _polled(ctx, functools.partial(ctx.upstream.retrieve_job, upstream_id))
    events = await upstream_events(ctx, upstream_id, record.last_event_id)
    checkpoints = None
    if job.status in ENDED or _mentions_checkpoint(events):
        found = await _polled(ctx, functools.partial(ctx.upstream.list_checkpoints, upstream_id))
        checkpoints = [_shown_checkpoint(item.model_dump(mode="json"), record) for item in found]
    shown = [_shown_event(event, record.aliases) for event in events]
    return Snapshot(job, shown, checkpoints, record.listed, read_at)


async def upstream_events(
    ctx: Context, upstream_id: str, last_seen: str | None
) -> list[dict[str, Any]]:
    """The upstream's events after `last_seen`, oldest first, reading back page by page."""
    newest_first: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        read = functools.partial(
            ctx.upstream.list_events, upstream_id, after=after, limit=EVENT_PAGE
        )
        page, more = await _polled(ctx, read)
        newest_first += page
        found = new_events(newest_first, last_seen)
        if found.complete or not more or not page:
            return [dict(event) for event in found.events]
        after = str(page[-1]["id"])


async def _polled(ctx: Context, call: Callable[[], Awaitable[T]]) -> T:
    return await within_budget(ctx, Priority.POLL, call)


def observe_poll(record: JobRecord, snapshot: Snapshot, now: float) -> JobRecord:
    if snapshot.events:
        record.last_event_id = str(snapshot.events[-1]["id"])
    if record.listed is not None and record.listed != snapshot.listed:
        return record  # a later walk listed it meanwhile: its events are in, its poll follows
    if record.controlled_at is not None and snapshot.read_at < record.controlled_at:
        return record  # paused, resumed or cancelled meanwhile: its events are in, a poll follows
    record.listed, record.events_at = None, now
    before = record.state
    copy_upstream(record, snapshot.job)
    if is_terminal(before):  # ended here meanwhile (a cancel): only the facts are new
        return record
    record.state = observe(before, snapshot.job.status)
    record.failures = 0
    saw(record, before, now)
    if is_terminal(record.state):
        ended(record, now, observed=True)
    else:
        record.due_at = None  # the poll cycle makes it due again
    return record


async def sync_now(ctx: Context, job_id: str) -> None:
    """The `sync` step of an ended job, at once, for a caller asking for its events or
    checkpoints: they answer complete. A worker already on the job is waited for, a while."""
    for _ in range(SYNC_WAIT_TRIES):
        async with job_lock(ctx, job_id) as held:
            if held:
                record = await ctx.store.jobs.get(job_id)
                if record is not None and "sync" in record.pending:
                    await poll(ctx, record, cross_off=["sync"])
                return
        record = await ctx.store.jobs.get(job_id)
        if record is None or "sync" not in record.pending:
            return
        await anyio.sleep(SYNC_WAIT_SECONDS)


def _mentions_checkpoint(events: list[dict[str, Any]]) -> bool:
    return any("checkpoint" in str(event.get("message", "")).lower() for event in events)


def _shown_event(event: dict[str, Any], aliases: Mapping[str, str]) -> dict[str, Any]:
    message = str(event.get("message", ""))
    for upstream, ours in aliases.items():
        message = message.replace(upstream, ours)
    return {**event, "message": message}


def _shown_checkpoint(checkpoint: dict[str, Any], record: JobRecord) -> dict[str, Any]:
    return {**checkpoint, "fine_tuning_job_id": record.id}
