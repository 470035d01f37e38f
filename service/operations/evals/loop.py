"""Evals in the fine-tuning loop: a job (or a sweep's trial) names an `eval_id`; once its model
succeeds, the eval runs on the tuned model and, once per eval and base model, on the base model.

At create, `template_for` checks the eval is the caller's and takes its sampling template
(`domain.evals.loop`: the data source of its first run that samples a model, less the model),
which the job keeps. The finishing step `evaluate_job` creates the runs through `runs.create_run`,
the operation behind `POST /v1/evals/{id}/runs`, as the job's key: its org's policy, budget and
model routing are checked there, and every sample goes through the proxy (rate limits, usage,
audit). Run ids are derived from the job and the eval, so a step run again after its worker died
finds what it made; a base-model run already queued, in progress or completed with the same
template is reused. A refusal (the budget is spent, the eval or the key is gone) is kept on the
job as `eval_error` rather than retried.
"""

from __future__ import annotations

import itertools
from typing import Any

from service.domain.evals.loop import (
    JOB_KEY,
    KIND_KEY,
    LIVE,
    SWEEP_KEY,
    base_run_id,
    model_run_id,
    run_body,
    samples_like,
    sampling_template,
)
from service.domain.sweeps.trials import sweep_of
from service.domain.tenancy.access import Principal
from service.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from service.operations.context import Context
from service.operations.evals.evals import get_eval
from service.operations.evals.runs import create_run, queue_run
from service.operations.tenancy.audit import record_audit
from service.store.evals import RunRecord
from service.store.jobs import JobRecord

PAGE = 100
MAX_RUNS_READ = 500
# Refusals no retry will change; anything else (Redis, a rate limit) is retried by the job.
REFUSED = (InvalidRequest, NotFound, QuotaExceeded, PermissionDenied, AuthenticationFailed)


async def template_for(ctx: Context, principal: Principal, eval_id: str) -> dict[str, Any]:
    """The eval's sampling template; a 404 naming `eval_id` for an unknown or another org's
    eval, a 400 when no run of it samples a model yet."""
    await get_eval(ctx, principal, eval_id)
    after: str | None = None
    for _ in range(MAX_RUNS_READ // PAGE):
        runs, more = await ctx.store.eval_runs.page(eval_id, after, PAGE, newest_first=False)
        for run in runs:
            template = sampling_template(run.data_source)
            if template is not None:
                return template
        if not more or not runs:
            break
        after = runs[-1].id
    raise InvalidRequest(
        f"Eval {eval_id} has no run that samples a model, so there is nothing to sample the "
        "tuned model with: create a run with a `completions` data source first (on the base "
        "model, say); its items, input messages and sampling parameters are used.",
        param="eval_id",
        code="eval_without_template",
    )


async def check_criterion(ctx: Context, principal: Principal, eval_id: str, criterion: str) -> None:
    record = await get_eval(ctx, principal, eval_id)
    names = [c["name"] for c in record.testing_criteria]
    if criterion not in names:
        raise InvalidRequest(
            f"Eval {eval_id} has no testing criterion named {criterion!r} (it has "
            f"{', '.join(repr(name) for name in names)}).",
            param="objective",
        )


async def evaluate_job(ctx: Context, record: JobRecord) -> JobRecord | None:
    """The finishing step of a succeeded job that names an eval; the record with its runs."""
    eval_id = record.request.get("eval_id")
    if not eval_id or not record.fine_tuned_model or record.eval_template is None:
        return record
    runs: dict[str, str] = dict(record.eval_runs)
    error: dict[str, Any] | None = None
    try:
        principal = await _principal(ctx, record)
        runs["model"] = await _model_run(ctx, principal, record, eval_id)
        runs["base"] = await _base_run(ctx, principal, record, eval_id)
    except REFUSED as refusal:
        error = {"code": refusal.code, "message": refusal.message, "param": refusal.param}

    def remember(current: JobRecord) -> JobRecord:
        current.eval_runs, current.eval_error = runs, error
        return current

    return await ctx.store.jobs.update(record.id, remember)


async def _principal(ctx: Context, record: JobRecord) -> Principal:
    view = await ctx.store.models.caller(record.key_id or "")
    if view is None or view.key.revoked_at is not None or view.org.id != record.org_id:
        raise PermissionDenied("The key that created the job is gone: its eval is not run.")
    return Principal(org_id=record.org_id, key_id=view.key.id, role=view.key.role)


def _labels(record: JobRecord, kind: str) -> dict[str, str]:
    sweep = sweep_of(record.request.get("metadata"))
    return {JOB_KEY: record.id, KIND_KEY: kind} | ({SWEEP_KEY: sweep} if sweep else {})


async def _model_run(ctx: Context, principal: Principal, record: JobRecord, eval_id: str) -> str:
    run_id = model_run_id(record.id, eval_id)
    model = record.fine_tuned_model or ""
    body = run_body(record.eval_template or {}, model, f"{model} ({record.id})", {})
    body["metadata"] = _labels(record, "model")
    await _ensure(ctx, principal, eval_id, run_id, body)
    return run_id


async def _base_run(ctx: Context, principal: Principal, record: JobRecord, eval_id: str) -> str:
    template, base = record.eval_template or {}, record.base_model
    live = await _live_run(ctx, eval_id, template, base)
    if live is not None:
        await _requeue_waiting(ctx, live)
        return live.id
    body = run_body(template, base, f"{base} (base)", {KIND_KEY: "base", JOB_KEY: record.id})
    for generation in itertools.count():
        run_id = base_run_id(eval_id, base, template, generation)
        found = await _ensure(ctx, principal, eval_id, run_id, body)
        if found.status in LIVE:
            return run_id
    raise AssertionError("unreachable")


async def _live_run(
    ctx: Context, eval_id: str, template: dict[str, Any], model: str
) -> RunRecord | None:
    """The newest run of the eval sampling `model` with the template that has not failed."""
    runs, _ = await ctx.store.eval_runs.page(eval_id, None, MAX_RUNS_READ, newest_first=True)
    return next(
        (r for r in runs if r.status in LIVE and samples_like(r.data_source, template, model)),
        None,
    )


async def _ensure(
    ctx: Context, principal: Principal, eval_id: str, run_id: str, body: dict[str, Any]
) -> RunRecord:
    """The run with this id: created (and audited) if there is none, queued again if it never
    left the queue (its worker died between storing and queueing it)."""
    found = await ctx.store.eval_runs.get(run_id)
    if found is None:
        try:
            created = await create_run(ctx, principal, eval_id, body, run_id=run_id)
        except Conflict:  # another job's step made it a moment ago
            return await _ensure(ctx, principal, eval_id, run_id, body)
        await _audit(ctx, principal, created, body)
        return created
    await _requeue_waiting(ctx, found)
    return found


async def _requeue_waiting(ctx: Context, run: RunRecord) -> None:
    if run.status == "queued":  # its task has not started: queue it (again, if it is there)
        await queue_run(ctx, run.id)


async def _audit(ctx: Context, principal: Principal, run: RunRecord, body: dict[str, Any]) -> None:
    details = {"eval_id": run.eval_id, "model": run.model, **body["metadata"]}
    await record_audit(
        ctx.store,
        principal=principal,
        action="evals.runs.create",
        outcome="success",
        resource_id=run.id,
        details=details,
    )
