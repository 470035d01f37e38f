"""Hyperparameter sweeps from the caller's side: create (checked up front), cancel, promote
(behind the evals promote gate when the caller asks for evidence).

`create_sweep` plans every trial at once (`domain.sweeps.plan_trials`), checks the first
trial's job body exactly as `POST /v1/fine_tuning/jobs` would (model, method, files, policy),
estimates each trial's training tokens from the training file's dataset report (its billing
tokens for the model, times the trial's epochs) and refuses a sweep whose total is over its
`training_token_budget`, then reserves the sum of the trials' worst-case costs against the
org's budgets as one reservation (`budgets.training`). The estimate ignores a
`validation_split`'s held-out share, so it errs high. The workers take it from there
(`sweeps.runner`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from service.domain.datasets.report import CostEstimate, DatasetReport
from service.domain.jobs.request import MAX_SEED, parse_job_request
from service.domain.sweeps.request import (
    SWEEP_KEY,
    TRIAL_KEY,
    SweepRequest,
    eval_criterion,
    parse_sweep_request,
    trial_body,
)
from service.domain.sweeps.trials import plan_trials, trial_tokens
from service.domain.tenancy.access import Principal
from service.errors import Conflict, InvalidRequest
from service.ids import new_id
from service.operations.budgets import training as budget_training
from service.operations.context import Context
from service.operations.evals import gate as promote_gate
from service.operations.evals import loop as evals_loop
from service.operations.evals.gate import Gate
from service.operations.inference import models
from service.operations.inference.models import Alias
from service.operations.jobs import create as jobs
from service.operations.sweeps import runner as sweep_runner
from service.operations.sweeps import schedule as sweep_schedule
from service.operations.sweeps.views import Trial, best_trial, get_sweep, load_trials
from service.store.sweeps import SweepRecord, TrialRecord


async def create_sweep(ctx: Context, principal: Principal, body: bytes) -> SweepRecord:
    request = parse_sweep_request(body)
    search_seed = _seed(request.search.seed) if request.search.type == "random" else None
    plan = plan_trials(request.space, request.search.type, search_seed, request.max_trials)
    sweep_id, seed = new_id("sweep-"), _seed(request.seed)
    first = trial_body(request, plan[0], seed, {SWEEP_KEY: sweep_id, TRIAL_KEY: "0"})
    checked = await jobs.check_request(ctx, principal, parse_job_request(first))
    await _check_eval(ctx, principal, request)
    estimate = await _estimate(ctx, request, checked.base_model)
    trials = [
        TrialRecord(index=index, hyperparameters=values, estimated_tokens=_tokens(estimate, values))
        for index, values in enumerate(plan)
    ]
    _check_budget(request, trials, estimate)
    tokens = [trial.estimated_tokens for trial in trials]
    shares = budget_training.trial_shares(ctx, checked.base_model, tokens)
    for trial, share in zip(trials, shares, strict=True):
        trial.budget_share = share
    held = await budget_training.reserve_sweep(ctx, principal, checked.base_model, shares)
    now = time.time()
    record = SweepRecord(
        id=sweep_id,
        org_id=principal.org_id or "",
        key_id=principal.key_id,
        role=principal.role,
        created_at=int(now),
        seq=now,
        request=request.model_dump(mode="json", exclude_none=True),
        base_model=checked.base_model,
        seed=seed,
        search_seed=search_seed,
        trials=trials,
        budget=held,
    )
    try:
        await ctx.store.sweeps.create(record, due_at=now)
    except BaseException:
        await budget_training.release_share(ctx, held, sum(shares))
        raise
    await sweep_schedule.queue_task(ctx, now)
    return record


async def _check_eval(ctx: Context, principal: Principal, request: SweepRequest) -> None:
    """The eval its trials run must be the org's and have a sampling template; an eval
    objective must name one of its criteria."""
    if request.eval_id is None:
        return
    await evals_loop.template_for(ctx, principal, request.eval_id)
    criterion = eval_criterion(request.objective)
    if criterion is not None:
        await evals_loop.check_criterion(ctx, principal, request.eval_id, criterion)


def audit_details(record: SweepRecord) -> dict[str, Any]:
    request = record.request
    details = {
        "model": request["model"],
        "search": request["search"]["type"],
        "trials": len(record.trials),
        "training_file": request["training_file"],
        "eval_id": request.get("eval_id"),
    }
    return {name: value for name, value in details.items() if value is not None}


def _seed(given: int | None) -> int:
    return given if given is not None else secrets.randbelow(MAX_SEED + 1)


async def _estimate(ctx: Context, request: SweepRequest, base_model: str) -> CostEstimate | None:
    """The training file report's estimate for the model, if it has one."""
    raw = await ctx.store.files.report(request.training_file)
    if raw is None:
        return None
    report = DatasetReport.model_validate_json(raw)
    found = [estimate for estimate in report.estimated_costs if estimate.model == base_model]
    return found[0] if found else None


def _tokens(estimate: CostEstimate | None, hyperparameters: dict[str, Any]) -> int | None:
    if estimate is None:
        return None
    return trial_tokens(estimate.billing_tokens, hyperparameters.get("n_epochs"), estimate.epochs)


def _check_budget(
    request: SweepRequest, trials: list[TrialRecord], estimate: CostEstimate | None
) -> None:
    budget = request.training_token_budget
    if budget is None:
        return
    if estimate is None:
        raise InvalidRequest(
            "The training tokens of this sweep cannot be estimated for its model and dataset, "
            "so a training_token_budget cannot be checked.",
            param="training_token_budget",
        )
    total = sum(trial.estimated_tokens or 0 for trial in trials)
    if total > budget:
        raise InvalidRequest(
            f"The sweep's {len(trials)} trials are estimated at {total} training tokens, over "
            f"its training_token_budget of {budget}.",
            param="training_token_budget",
            code="budget_exceeded",
        )


async def cancel_sweep(ctx: Context, principal: Principal, sweep_id: str) -> SweepRecord:
    """Stop launching trials and cancel every running one (the workers retry any the job
    state refuses for a moment). Cancelling a cancelled sweep changes nothing."""
    record = await get_sweep(ctx, principal, sweep_id)
    if record.status in ("succeeded", "failed"):
        raise Conflict(
            f"This sweep has already {record.status} and cannot be cancelled.",
            code="invalid_sweep_state",
        )

    def cancel(current: SweepRecord) -> SweepRecord | None:
        if current.status != "running":
            return None
        current.status = "cancelling"
        return current

    updated = await ctx.store.sweeps.update(sweep_id, cancel)
    assert updated is not None
    await sweep_runner.cancel_running(ctx, updated)
    await sweep_schedule.wake_sweep(ctx, sweep_id)
    return updated


@dataclass(frozen=True, slots=True)
class Promoted:
    alias: Alias
    trial: Trial


async def promote_best(
    ctx: Context, principal: Principal, sweep_id: str, alias: str, gate: Gate | None = None
) -> Promoted:
    """Point `alias` at the best trial's tuned model (the best so far while it runs); with a
    `gate`, only when the eval shows that model beats the alias's current one (`evals.gate`)."""
    record = await get_sweep(ctx, principal, sweep_id)
    best = best_trial(record, await load_trials(ctx, record))
    model = best.job.fine_tuned_model if best is not None and best.job is not None else None
    if best is None or model is None:
        raise Conflict("This sweep has no succeeded trial to promote yet.", code="no_best_trial")
    if gate is not None:
        await promote_gate.check_alias(ctx, principal, alias, model, gate)
    named = await models.put_alias(ctx, record.org_id, alias, model)
    return Promoted(named, best)
