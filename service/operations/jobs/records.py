"""Changes to a job record shared by the steps that move it: what an upstream job object tells
us, when the gateway saw each state, what is left to do once it ended, and failing a job before
it reached the upstream.

The changes are pure functions of a record (applied through the store's compare-and-set), except
`fail_at_gateway`, which writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from service.domain.jobs.states import JobEvent, JobState, is_terminal, transition
from service.domain.sweeps.trials import sweep_of
from service.ids import new_id
from service.operations.context import Context
from service.operations.inference.models import register_tuned_model
from service.store.jobs import JobRecord
from service.upstream import FineTuningJob


def saw(record: JobRecord, before: JobState, now: float) -> None:
    """Remember when the gateway learnt of a new state (and how often it was polling)."""
    if record.state != before:
        record.history.append(
            {"state": record.state.value, "at": now, "poll_delay": record.poll_delay}
        )


def ended(record: JobRecord, now: float, *, observed: bool) -> None:
    """A terminal state was just reached: finish at once."""
    record.finished_at = record.finished_at or int(now)
    record.estimated_finish = None
    record.pending = steps_for(record, observed=observed)
    record.due_at = now


def crossed_off(steps: list[str]) -> Callable[[JobRecord], JobRecord | None]:
    """Finishing steps done: off the record's list (the job is no longer due after the last)."""

    def cross(record: JobRecord) -> JobRecord | None:
        record.pending = [step for step in record.pending if step not in steps]
        if not record.pending:
            record.due_at = None
        return record

    return cross


def gateway_event(message: str, level: str = "info") -> dict[str, Any]:
    """An event of the gateway's own (the upstream never saw the job, or not yet)."""
    return {
        "object": "fine_tuning.job.event",
        "id": new_id("ftevent-"),
        "created_at": int(time.time()),
        "level": level,
        "message": message,
        "data": {},
        "type": "message",
    }


def steps_for(record: JobRecord, *, observed: bool) -> list[str]:
    """What is left to do once a job has ended, in order (see `jobs.finish`). `observed`: a
    poll saw the end, so the events are already in."""
    steps = ["promote"]
    if record.upstream_id is not None:
        steps += [] if observed else ["sync"]
        steps += ["metrics"] if record.state == JobState.SUCCEEDED else []
        steps += ["usage", "files"]
    in_sweep = sweep_of(record.request.get("metadata")) is not None
    evaluated = record.state == JobState.SUCCEEDED and bool(record.request.get("eval_id"))
    return [
        *steps,
        "audit",
        *(["evals"] if evaluated else []),
        "callback",
        *(["sweep"] if in_sweep else []),
    ]


def copy_upstream(record: JobRecord, job: FineTuningJob) -> None:
    """Keep what the upstream knows that callers see (ids stay tunegate's)."""
    record.upstream_status = job.status
    record.fine_tuned_model = job.fine_tuned_model
    record.trained_tokens = job.trained_tokens
    record.finished_at = job.finished_at or record.finished_at
    record.estimated_finish = job.estimated_finish
    record.error = _error(job)
    record.result_files = list(job.result_files or [])
    if job.hyperparameters is not None:
        record.hyperparameters = job.hyperparameters.model_dump(mode="json", exclude_none=True)
    if job.method is not None:
        record.method = job.method.model_dump(mode="json", exclude_none=True)


async def register_model(ctx: Context, record: JobRecord, job: FineTuningJob) -> None:
    """Make a succeeded job's model routable before the job shows as succeeded, so a caller
    who sees `succeeded` can use `fine_tuned_model` at once (registering again is harmless)."""
    if job.status == "succeeded" and job.fine_tuned_model:
        created = job.finished_at or int(time.time())
        await register_tuned_model(
            ctx.store,
            record.org_id,
            job.fine_tuned_model,
            record.base_model,
            record.id,
            created=created,
        )


def _error(job: FineTuningJob) -> dict[str, Any] | None:
    error = job.error
    if error is None or not (error.message or error.code):
        return None
    return {"code": error.code, "message": error.message, "param": error.param}


async def fail_at_gateway(ctx: Context, record: JobRecord, error: dict[str, Any]) -> JobRecord:
    """The job cannot start (its files never reached the upstream, or the upstream refused
    it): it fails here, with OpenAI's error shape."""
    now = time.time()

    def fail(current: JobRecord) -> JobRecord | None:
        if is_terminal(current.state):
            return None
        before = current.state
        current.state = transition(current.state, JobEvent.GATEWAY_FAILED)
        current.error = error
        saw(current, before, now)
        ended(current, now, observed=False)
        return current

    said = gateway_event(f"The job failed before it started: {error.get('message')}", "error")
    updated = await ctx.store.jobs.update(record.id, fail, events=[said])
    assert updated is not None
    return updated
