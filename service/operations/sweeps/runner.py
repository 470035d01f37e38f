"""Moving sweeps forward, in the workers, one short advance at a time (see `sweeps.schedule` for
when). Each advance runs under the sweep's lock and reads every trial's job afresh:

    stop       with `early_stop`, mark running trials that fall behind the best finished one
    launch     create trials, in plan order, while fewer than the parallel limit run
    cancel     cancel the jobs of marked trials (and of every trial once the sweep is cancelled)
    end        once every trial has settled: the best trial, the status, then the finishing
               steps (`budget`: the unlaunched trials' shares back, `audit`, `callback`),
               each crossed off once done

Trials are ordinary jobs made by `jobs.create_job` with an `Idempotency-Key` fixed by the sweep
and the trial, and recorded in the sweep right after: a worker that dies between the two leaves a
job the next advance gets back from the key instead of creating a twin. A stop is recorded before
its cancel is sent, so a trial is only ever cancelled by a recorded decision; a cancel the job
state refuses for now (a job being handed upstream) is retried shortly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

import orjson

from service.domain.jobs.states import JobEvent
from service.domain.sweeps.request import SWEEP_KEY, TRIAL_KEY, curve_metric, trial_body
from service.domain.sweeps.trials import best_score, objective_curve, should_stop
from service.domain.tenancy.access import Principal, Role
from service.domain.tenancy.audit import Outcome
from service.errors import Conflict, InvalidRequest, NotFound, UpstreamRejected
from service.logging import get_logger
from service.operations.budgets import training as budget_training
from service.operations.context import Context
from service.operations.jobs import create as jobs
from service.operations.jobs.lock import held_lock
from service.operations.sweeps import schedule as sweep_schedule
from service.operations.sweeps.views import (
    Trial,
    load_trials,
    metric_scores,
    request_of,
    scores,
    sweep_json,
)
from service.operations.tenancy.audit import record_audit
from service.operations.tenancy.orgs import get_org
from service.operations.webhooks import events as webhooks
from service.store.sweeps import SweepRecord

BATCH_SIZE = 100
RETRY_SECONDS = 2.0
ENDED = frozenset({"succeeded", "failed", "cancelled"})
log = get_logger(__name__)


async def advance_due_sweeps(ctx: Context) -> int:
    """Advance every sweep that is due; returns how many were advanced."""
    advanced = 0
    for sweep_id in await ctx.store.sweeps.due(time.time(), BATCH_SIZE):
        try:
            if await advance_sweep(ctx, sweep_id):
                advanced += 1
            else:  # another worker holds it: look again shortly rather than at the sweeper's
                await sweep_schedule.queue_task(ctx, time.time() + RETRY_SECONDS)
        except Exception:
            log.error("sweep_advance_failed", sweep_id=sweep_id, exc_info=True)
            await sweep_schedule.wake_sweep(ctx, sweep_id, time.time() + RETRY_SECONDS)
    return advanced


async def advance_sweep(ctx: Context, sweep_id: str) -> bool:
    """One advance, unless another worker holds the sweep; True if it ran."""
    async with held_lock(ctx, f"sweep-advance:{sweep_id}") as held:
        if not held:
            return False
        await ctx.store.sweeps.claim(sweep_id, time.time() + sweep_schedule.HEARTBEAT_SECONDS)
        record = await ctx.store.sweeps.get(sweep_id)
        if record is None or await _advance(ctx, record):
            await ctx.store.sweeps.settle(sweep_id)
        return True


async def _advance(ctx: Context, record: SweepRecord) -> bool:
    """True once nothing is left to do."""
    if record.status == "running":
        record = await _stop_laggards(ctx, record, await load_trials(ctx, record))
        record = await _launch(ctx, record, await load_trials(ctx, record))
    if record.status in ("running", "cancelling"):
        if await _cancel_marked(ctx, record, await load_trials(ctx, record)):
            await sweep_schedule.wake_sweep(ctx, record.id, time.time() + RETRY_SECONDS)
        record = await _end_if_settled(ctx, record, await load_trials(ctx, record))
    if record.status in ENDED:
        record = await _finish(ctx, record)
        return not record.pending
    return False


def principal_of(record: SweepRecord) -> Principal:
    return Principal(org_id=record.org_id, key_id=record.key_id, role=cast(Role, record.role))


# Early stopping


async def _stop_laggards(ctx: Context, record: SweepRecord, trials: list[Trial]) -> SweepRecord:
    request = request_of(record)
    rule = request.early_stop
    metric = curve_metric(request.objective)  # an eval objective stops on the loss
    best = best_score(metric_scores(trials, metric), metric)
    if rule is None or best is None:
        return record
    reference = objective_curve(trials[best.index].rows, metric)
    for trial in trials:
        if not trial.running or trial.record.stopped is not None:
            continue
        curve = objective_curve(trial.rows, metric)
        decision = should_stop(curve, reference, metric, rule)
        if decision is None:
            continue
        stopped = {"step": decision.step, "value": decision.value, "reference": decision.reference}
        stopped["reference_trial"] = best.index
        record = await _change_trial(ctx, record, trial.record.index, stopped=stopped)
        await _audit(ctx, record, "sweeps.trial_stopped", {"trial": trial.record.index, **stopped})
    return record


async def cancel_running(ctx: Context, record: SweepRecord) -> bool:
    """Cancel the running trials that must stop now; True if one must be tried again."""
    return await _cancel_marked(ctx, record, await load_trials(ctx, record))


async def _cancel_marked(ctx: Context, record: SweepRecord, trials: list[Trial]) -> bool:
    """Cancel what must stop; True if a cancel has to be tried again shortly."""
    everything = record.status == "cancelling"
    retry = False
    for trial in trials:
        if trial.job is None or not trial.running:
            continue
        if everything or trial.record.stopped is not None:
            try:
                await jobs.control_job(ctx, principal_of(record), trial.job.id, JobEvent.CANCEL)
            except (Conflict, UpstreamRejected):
                # being handed upstream, or ended meanwhile (here, or upstream before the
                # cancel reached it): look again soon, when the poll has recorded the end
                retry = True
    return retry


# Launching trials


async def _launch(ctx: Context, record: SweepRecord, trials: list[Trial]) -> SweepRecord:
    limit = await parallel_limit(ctx, record)
    running = sum(1 for trial in trials if trial.running)
    for trial in trials:
        if running >= limit:
            break
        if trial.record.job_id is not None or trial.record.error is not None:
            continue
        job_id, error = await _create_trial(ctx, record, trial.record.index)
        record = await _change_trial(ctx, record, trial.record.index, job_id=job_id, error=error)
        running += job_id is not None
    return record


async def parallel_limit(ctx: Context, record: SweepRecord) -> int:
    """The sweep's `max_parallel`, within the org's `max_concurrent_jobs` (as it is now)."""
    org = await get_org(ctx.store, record.org_id)
    wanted = request_of(record).max_parallel
    cap = org.policy.max_concurrent_jobs
    return min(wanted, cap) if cap is not None else wanted


def trial_idempotency_key(sweep_id: str, index: int) -> str:
    return f"tunegate-sweep-{sweep_id}-trial-{index}"


async def _create_trial(
    ctx: Context, record: SweepRecord, index: int
) -> tuple[str | None, dict[str, Any] | None]:
    trial = record.trials[index]
    labels = {SWEEP_KEY: record.id, TRIAL_KEY: str(index)}
    body = trial_body(request_of(record), trial.hyperparameters, record.seed, labels)
    key = trial_idempotency_key(record.id, index)
    held = budget_training.share_of(record.budget, trial.budget_share)
    try:
        created = await jobs.create_job(
            ctx, principal_of(record), orjson.dumps(body), key, held=held
        )
    except (InvalidRequest, NotFound) as error:  # its file or eval was deleted, the policy ...
        await _audit(ctx, record, "sweeps.trial_failed", {"trial": index, "error": error.message})
        return None, {"code": error.code, "message": error.message, "param": error.param}
    if not created.replayed:
        details = {"trial": index, "job_id": created.record.id, **trial.hyperparameters}
        await _audit(ctx, record, "sweeps.trial_created", details)
    return created.record.id, None


async def _change_trial(
    ctx: Context, record: SweepRecord, index: int, **fields: Any
) -> SweepRecord:
    def change(current: SweepRecord) -> SweepRecord:
        current.trials[index] = current.trials[index].model_copy(update=fields)
        return current

    updated = await ctx.store.sweeps.update(record.id, change)
    assert updated is not None
    return updated


# Ending


async def _end_if_settled(ctx: Context, record: SweepRecord, trials: list[Trial]) -> SweepRecord:
    stopping = record.status == "cancelling"
    if not all(trial.settled or (stopping and trial.job is None) for trial in trials):
        return record
    request = request_of(record)
    best = best_score(scores(trials, request), request.objective)
    status = "cancelled" if stopping else "succeeded" if best is not None else "failed"

    def end(current: SweepRecord) -> SweepRecord | None:
        if current.status in ENDED:
            return None
        current.status = status  # type: ignore[assignment]
        current.best_trial = best.index if best is not None else None
        current.finished_at = int(time.time())
        current.pending = ["budget", "audit", "callback"]
        return current

    updated = await ctx.store.sweeps.update(record.id, end)
    assert updated is not None
    return updated


async def _finish(ctx: Context, record: SweepRecord) -> SweepRecord:
    for step in list(record.pending):
        await _STEPS[step](ctx, record)
        record = await _cross_off(ctx, record, step)
    return record


async def _cross_off(ctx: Context, record: SweepRecord, step: str) -> SweepRecord:
    def cross(current: SweepRecord) -> SweepRecord:
        current.pending = [name for name in current.pending if name != step]
        return current

    updated = await ctx.store.sweeps.update(record.id, cross)
    assert updated is not None
    return updated


async def _release_unlaunched(ctx: Context, record: SweepRecord) -> None:
    keys = [trial_idempotency_key(record.id, trial.index) for trial in record.trials]
    await budget_training.release_unlaunched(ctx, record, keys)


async def _audit_end(ctx: Context, record: SweepRecord) -> None:
    trials = await load_trials(ctx, record)
    best = trials[record.best_trial] if record.best_trial is not None else None
    details = {
        "trials": len(trials),
        "early_stopped": sum(1 for trial in trials if trial.early_stopped),
        "best_job_id": best.record.job_id if best is not None else None,
        "best_hyperparameters": best.record.hyperparameters if best is not None else None,
    }
    await _audit(ctx, record, f"sweeps.{record.status}", details)


async def _callback(ctx: Context, record: SweepRecord) -> None:
    data = sweep_json(record, await load_trials(ctx, record), ctx.prices)
    event_type = f"fine_tuning.sweep.{record.status}"
    delivery_id = f"whdel_{record.id}_{record.status}"
    await webhooks.queue_callback(ctx, record.org_id, record.id, delivery_id, event_type, data)


async def _audit(ctx: Context, record: SweepRecord, action: str, details: dict[str, Any]) -> None:
    outcome: Outcome = "error" if action.endswith("failed") else "success"
    await record_audit(
        ctx.store,
        principal=None,
        org_id=record.org_id,
        action=action,
        outcome=outcome,
        resource_id=record.id,
        details={name: value for name, value in details.items() if value is not None},
    )


_STEPS: dict[str, Callable[[Context, SweepRecord], Any]] = {
    "budget": _release_unlaunched,
    "audit": _audit_end,
    "callback": _callback,
}
