"""An eval's runs from the caller's side: create (queued for the workers), read, cancel,
delete, and their output items. A run belongs to its eval's org; another org's is unknown.

A run is refused up front when the org's budget has nothing left (each sample and grader call
then reserves its own worst case through the proxy) and when the model it samples does not
route for the org."""

from __future__ import annotations

import time
from typing import Any, Literal

from service.domain.evals import results
from service.domain.evals.request import Body, CompletionsSource, parse_run
from service.domain.inference.request import route_model
from service.domain.tenancy.access import Principal
from service.errors import Conflict, InvalidRequest, NotFound
from service.ids import new_id
from service.operations.budgets import charges
from service.operations.context import Context
from service.operations.evals.evals import get_eval
from service.operations.evals.items import check_source
from service.operations.evals.runner import TASK
from service.store.evals import EvalRecord, RunRecord


def run_not_found(run_id: str) -> NotFound:
    return NotFound(f"Run with id '{run_id}' not found.", param="run_id", code="not_found")


def output_item_not_found(item_id: str) -> NotFound:
    message = f"Output item with id '{item_id}' not found."
    return NotFound(message, param="output_item_id", code="not_found")


def run_json(run: RunRecord) -> dict[str, Any]:
    counts = run.result_counts or {"total": 0, "passed": 0, "failed": 0, "errored": 0}
    return {
        "object": "eval.run",
        "id": run.id,
        "eval_id": run.eval_id,
        "name": run.name,
        "created_at": run.created_at,
        "status": run.status,
        "model": run.model,
        "metadata": run.metadata,
        "data_source": run.data_source,
        "error": run.error,
        "report_url": f"/v1/evals/{run.eval_id}/runs/{run.id}",
        "result_counts": counts,
        "per_model_usage": run.per_model_usage,
        "per_testing_criteria_results": run.per_testing_criteria_results,
    }


async def _check_budget(ctx: Context, principal: Principal) -> None:
    view = await ctx.store.models.caller(principal.key_id or "")
    if view is None or view.org.policy.budgets is None:
        return
    budgets = view.org.policy.budgets
    held = await charges.reserve(ctx, view.org.id, budgets, principal.key_id, "inference", 1)
    await charges.settle(ctx, held, 0)


async def _check_model(ctx: Context, principal: Principal, model: str) -> None:
    view = await ctx.store.models.caller(principal.key_id or "")
    if view is not None and route_model(model, view.org.policy, view.models, view.aliases) is None:
        raise InvalidRequest(
            f"The model '{model}' does not exist or you do not have access to it.",
            param="data_source.model",
            code="model_not_found",
        )


async def create_run(
    ctx: Context, principal: Principal, eval_id: str, body: Body, *, run_id: str | None = None
) -> RunRecord:
    """`run_id`: the id the run must have (the fine-tuning loop's, see `evals.loop`); a
    `Conflict` when a run already has it."""
    await _check_budget(ctx, principal)
    await get_eval(ctx, principal, eval_id)
    request = parse_run(body)
    source = request.data_source
    model = source.model if isinstance(source, CompletionsSource) else None
    if model is not None:
        await _check_model(ctx, principal, model)
    await check_source(ctx, principal, source)
    now = time.time()
    run = RunRecord(
        id=run_id or new_id("evalrun_"),
        eval_id=eval_id,
        org_id=principal.org_id or "",
        key_id=principal.key_id or "",
        created_at=int(now),
        seq=now,
        name=request.name or f"run {int(now)}",
        metadata=request.metadata or {},
        model=model,
        data_source=source.model_dump(mode="json", exclude_none=True),
    )
    if run_id is None:
        await ctx.store.eval_runs.put(run)
    elif not await ctx.store.eval_runs.put_new(run):
        raise Conflict(f"Run {run_id} already exists.", param="run_id")
    await queue_run(ctx, run.id)
    return run


async def queue_run(ctx: Context, run_id: str) -> None:
    """Queue the run's task (once: the task id is the run's)."""
    await ctx.queue.submit(TASK, run_id, job_id=f"tg-evalrun-{run_id}", timeout=3600)


async def get_run(ctx: Context, principal: Principal, eval_id: str, run_id: str) -> RunRecord:
    await get_eval(ctx, principal, eval_id)
    run = await ctx.store.eval_runs.get(run_id)
    if run is None or run.eval_id != eval_id or run.org_id != principal.org_id:
        raise run_not_found(run_id)
    return run


async def list_runs(
    ctx: Context,
    principal: Principal,
    eval_id: str,
    *,
    after: str | None,
    limit: int,
    order: Literal["asc", "desc"],
) -> tuple[list[RunRecord], bool]:
    await get_eval(ctx, principal, eval_id)
    return await ctx.store.eval_runs.page(eval_id, after, limit, newest_first=order == "desc")


async def cancel_run(ctx: Context, principal: Principal, eval_id: str, run_id: str) -> RunRecord:
    run = await get_run(ctx, principal, eval_id, run_id)
    stopped = await ctx.store.eval_runs.set_status(run_id, "canceled", ("completed", "failed"))
    if not stopped and run.status != "canceled":
        raise Conflict(f"Run {run_id} has already finished.", param="run_id")
    return await get_run(ctx, principal, eval_id, run_id)


async def delete_run(ctx: Context, principal: Principal, eval_id: str, run_id: str) -> None:
    run = await get_run(ctx, principal, eval_id, run_id)
    await ctx.store.eval_runs.set_status(run_id, "canceled", ("completed", "failed"))
    await ctx.store.eval_runs.delete(run)


async def output_items(
    ctx: Context, principal: Principal, eval_id: str, run_id: str
) -> list[dict[str, Any]]:
    await get_run(ctx, principal, eval_id, run_id)
    items = await ctx.store.eval_runs.items(run_id)
    return [items[index] for index in sorted(items)]


async def output_item(
    ctx: Context, principal: Principal, eval_id: str, run_id: str, item_id: str
) -> dict[str, Any]:
    for item in await output_items(ctx, principal, eval_id, run_id):
        if item["id"] == item_id:
            return item
    raise output_item_not_found(item_id)


def by_index(items: list[dict[str, Any]], size: int) -> list[results.Verdicts]:
    found: list[results.Verdicts] = [None] * size
    for item in items:
        if item["status"] != "error":
            verdicts = {r["name"]: r["passed"] for r in item["results"]}
            found[item["datasource_item_id"]] = verdicts
    return found


async def compare_records(
    ctx: Context,
    principal: Principal,
    record: EvalRecord,
    first: RunRecord,
    second: RunRecord,
    confidence: float = results.CONFIDENCE,
) -> list[results.Difference]:
    """Two runs of `record` item by item, on each of its criteria."""
    items = [await output_items(ctx, principal, record.id, run.id) for run in (first, second)]
    size = 1 + max((i["datasource_item_id"] for i in items[0] + items[1]), default=-1)
    names = [criterion["name"] for criterion in record.testing_criteria]
    return results.compare(names, by_index(items[0], size), by_index(items[1], size), confidence)


async def compare_runs(
    ctx: Context, principal: Principal, eval_id: str, run_ids: str | None
) -> dict[str, Any]:
    """Per criterion: both runs' pass rates over the items graded in both, the difference
    (second minus first) with its seeded paired-bootstrap interval, and the changed items."""
    record = await get_eval(ctx, principal, eval_id)
    names = [part.strip() for part in (run_ids or "").split(",") if part.strip()]
    if len(names) != 2:
        raise InvalidRequest("runs must name two runs of this eval: runs=a,b", param="runs")
    first, second = [await get_run(ctx, principal, eval_id, name) for name in names]
    rows = await compare_records(ctx, principal, record, first, second)
    return {
        "object": "eval.comparison",
        "eval_id": eval_id,
        "runs": names,
        "confidence": results.CONFIDENCE,
        "bootstrap": {"resamples": results.RESAMPLES, "seed": results.BOOTSTRAP_SEED},
        "testing_criteria": [row.to_json() for row in rows],
    }
