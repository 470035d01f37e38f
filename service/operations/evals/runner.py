"""An eval run in a worker: sample each item (through the proxy), grade it, keep it.

Each item's sample is kept the moment the model answered (`keep_sample`, written once) and its
output item once graded, so a worker that dies mid-run leaves a run that the next task resumes:
items already sampled are graded from the kept sample, never sampled again. A run samples at
most `CONCURRENCY` items at once, and an org's runs together at most `ORG_CONCURRENCY` (slots
in Redis, shared by every worker); a cancel is seen before each item.
"""

from __future__ import annotations

import time
from typing import Any

import anyio

from service.domain.evals import graders, results
from service.domain.evals.loop import SWEEP_KEY
from service.domain.evals.request import (
    CompletionsSource,
    EvalCreate,
    JsonlSource,
    LabelModel,
    Row,
    RunCreate,
    ScoreModel,
    StringCheck,
    TextSimilarity,
)
from service.errors import TunegateError
from service.ids import new_id
from service.logging import get_logger
from service.operations.context import Context
from service.operations.evals import calls
from service.operations.evals.items import read_rows
from service.operations.sweeps import schedule as sweep_schedule
from service.store.evals import EvalRecord, RunRecord
from service.store.inference.models import CallerView

CONCURRENCY = 4  # items of one run at once
ORG_CONCURRENCY = 8  # items of all an org's runs at once, across workers
SLOT_STALE_SECONDS = 600.0
SLOT_WAIT_SECONDS = 0.2
HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 10.0  # no heartbeat for this long: the worker died, the sweeper requeues
EMBEDDING_MODEL = "text-embedding-3-small"
TERMINAL = ("completed", "canceled", "failed")
TASK = "run_eval"
log = get_logger(__name__)


def criteria_of(record: EvalRecord) -> EvalCreate:
    return EvalCreate.model_validate(
        {
            "data_source_config": record.data_source_config,
            "testing_criteria": record.testing_criteria,
        }
    )


def source_of(run: RunRecord) -> JsonlSource | CompletionsSource:
    return RunCreate.model_validate({"data_source": run.data_source}).data_source


class RunContext:
    def __init__(self, ctx: Context, run: RunRecord, view: CallerView, record: EvalRecord) -> None:
        self.ctx, self.run, self.view, self.record = ctx, run, view, record
        self.criteria = criteria_of(record).testing_criteria
        self.source = source_of(run)

    async def cancelled(self) -> bool:
        current = await self.ctx.store.eval_runs.get(self.run.id)
        return current is None or current.status == "canceled"


async def _grade(
    rc: RunContext, criterion: Any, item: dict[str, Any], sample: dict[str, Any]
) -> graders.Grade:
    ctx, view, run_id = rc.ctx, rc.view, rc.run.id
    if isinstance(criterion, StringCheck):
        text = graders.render(criterion.input, item, sample)
        return graders.string_check(
            criterion, text, graders.render(criterion.reference, item, sample)
        )
    if isinstance(criterion, TextSimilarity):
        text = graders.render(criterion.input, item, sample)
        reference = graders.render(criterion.reference, item, sample)
        if criterion.evaluation_metric == "cosine":
            a, b = await calls.embed(ctx, view, run_id, [text, reference], EMBEDDING_MODEL)
            return graders.similarity_grade(criterion, graders.cosine(a, b))
        score = graders.similarity(criterion.evaluation_metric, text, reference)
        return graders.similarity_grade(criterion, score)
    messages = graders.render_messages(criterion.input, item, sample)
    reply = calls.text_of(await calls.chat(ctx, view, run_id, criterion.model, messages))
    if isinstance(criterion, LabelModel):
        return graders.label_grade(criterion, reply)
    assert isinstance(criterion, ScoreModel)
    return graders.score_grade(criterion, reply)


async def _sample(rc: RunContext, index: int, row: Row) -> dict[str, Any]:
    kept = await rc.ctx.store.eval_runs.sample(rc.run.id, index)
    if kept is not None:
        return kept
    source = rc.source
    if not isinstance(source, CompletionsSource):
        text = str((row.sample or {}).get("output_text", ""))
        return {"output": [{"role": "assistant", "content": text}], "input": [], "model": None}
    messages = graders.render_messages(source.input_messages.template, row.item, {})
    sampling = (
        source.sampling_params.model_dump(exclude_none=True) if source.sampling_params else {}
    )
    reply = await calls.chat(rc.ctx, rc.view, rc.run.id, source.model, messages, sampling)
    choice = (reply.get("choices") or [{}])[0]
    sample = {
        "input": messages,
        "output": [{"role": "assistant", "content": calls.text_of(reply)}],
        "finish_reason": choice.get("finish_reason"),
        "model": reply.get("model"),
        "usage": reply.get("usage"),
        "error": None,
        **sampling,
    }
    await rc.ctx.store.eval_runs.keep_sample(rc.run.id, index, sample)
    return sample


def _output_item(
    rc: RunContext,
    index: int,
    row: Row,
    sample: dict[str, Any],
    grades: list[graders.Grade] | None,
    error: str | None,
) -> dict[str, Any]:
    passed = grades is not None and all(g.passed for g in grades)
    return {
        "object": "eval.run.output_item",
        "id": new_id("outputitem_"),
        "run_id": rc.run.id,
        "eval_id": rc.run.eval_id,
        "created_at": int(time.time()),
        "status": "error" if grades is None else "pass" if passed else "fail",
        "datasource_item_id": index,
        "datasource_item": row.item,
        "results": [
            {
                "name": g.name,
                "score": g.score,
                "passed": g.passed,
                "sample": {"output_text": g.sample} if g.sample else None,
            }
            for g in grades or []
        ],
        "sample": {
            **sample,
            "error": {"code": "sampling_failed", "message": error} if error else None,
        },
    }


async def _org_slot(rc: RunContext, holder: str) -> None:
    while True:
        now = time.time()
        stale = now - SLOT_STALE_SECONDS
        if await rc.ctx.store.eval_runs.take_slot(
            rc.run.org_id, holder, ORG_CONCURRENCY, now, stale
        ):
            return
        await anyio.sleep(SLOT_WAIT_SECONDS)


async def _item(rc: RunContext, index: int, row: Row, limiter: anyio.CapacityLimiter) -> None:
    holder = f"{rc.run.id}:{index}"
    async with limiter:
        if await rc.cancelled():
            return
        await _org_slot(rc, holder)
        try:
            await _graded(rc, index, row)
        finally:
            await rc.ctx.store.eval_runs.give_slot(rc.run.org_id, holder)


async def _graded(rc: RunContext, index: int, row: Row) -> None:
    sample: dict[str, Any] = {}
    try:
        sample = await _sample(rc, index, row)
        output = str(sample["output"][0]["content"] or "")
        namespace = graders.sample_of(output)
        grades = [await _grade(rc, c, row.item, namespace) for c in rc.criteria]
        item = _output_item(rc, index, row, sample, grades, None)
    except TunegateError as error:
        item = _output_item(rc, index, row, sample, None, error.message)
    await rc.ctx.store.eval_runs.keep_item(rc.run.id, index, item)


def verdicts(items: dict[int, dict[str, Any]]) -> list[results.Verdicts]:
    found: list[results.Verdicts] = []
    for index in sorted(items):
        item = items[index]
        found.append(
            None if item["status"] == "error" else {r["name"]: r["passed"] for r in item["results"]}
        )
    return found


async def _fail(ctx: Context, run: RunRecord, message: str) -> str:
    run.status, run.error = "failed", {"code": "run_failed", "message": message}
    await ctx.store.eval_runs.put(run)
    await _wake_sweep(ctx, run)
    return run.status


async def execute_run(ctx: Context, run_id: str) -> str:
    """Take the run as far as it goes; its final status."""
    run = await ctx.store.eval_runs.get(run_id)
    if run is None or run.status in TERMINAL:
        await ctx.store.eval_runs.settle(run_id)
        return run.status if run else "missing"
    if not await ctx.store.eval_runs.set_status(run_id, "in_progress", unless=TERMINAL):
        await ctx.store.eval_runs.settle(run_id)
        return "canceled"
    record = await ctx.store.evals.get(run.eval_id)
    view = await ctx.store.models.caller(run.key_id)
    if record is None or view is None or view.key.revoked_at is not None:
        return await _fail(ctx, run, "The eval or the key that started the run is gone.")
    rc = RunContext(ctx, run, view, record)
    try:
        rows = await read_rows(ctx, run.org_id, rc.source)
    except TunegateError as error:
        return await _fail(ctx, run, error.message)
    done = await ctx.store.eval_runs.items(run_id)
    limiter = anyio.CapacityLimiter(CONCURRENCY)
    async with anyio.create_task_group() as beating:
        beating.start_soon(_heartbeat, ctx, run_id)
        async with anyio.create_task_group() as group:
            for index, row in enumerate(rows):
                if index not in done:
                    group.start_soon(_item, rc, index, row, limiter)
        beating.cancel_scope.cancel()
    status = await finish_run(ctx, run_id, [c.name for c in rc.criteria])
    await ctx.store.eval_runs.settle(run_id)
    return status


async def _heartbeat(ctx: Context, run_id: str) -> None:
    while True:
        await ctx.store.eval_runs.beat(run_id, time.time())
        await anyio.sleep(HEARTBEAT_SECONDS)


async def requeue_stale(ctx: Context) -> int:
    """Sweeper: a run whose worker stopped beating is queued again; it resumes where the
    kept samples and items leave it."""
    now = time.time()
    stale = await ctx.store.eval_runs.stale(now - STALE_SECONDS)
    for run_id in stale:
        await ctx.store.eval_runs.beat(run_id, now)
        await ctx.queue.submit(TASK, run_id, job_id=f"tg-evalrun-{run_id}-{int(now)}")
    return len(stale)


async def finish_run(ctx: Context, run_id: str, names: list[str]) -> str:
    run = await ctx.store.eval_runs.get(run_id)
    if run is None:
        return "missing"
    items = await ctx.store.eval_runs.items(run_id)
    found = verdicts(items)
    run.per_model_usage = results.per_model_usage(
        [item.get("sample") or {} for item in items.values()]
    )
    run.result_counts = results.result_counts(found)
    run.per_testing_criteria_results = results.per_criterion(names, found)
    if run.status != "canceled":
        run.status = "completed"
    await ctx.store.eval_runs.put(run)
    log.info("eval_run_finished", run_id=run_id, status=run.status, **run.result_counts)
    await _wake_sweep(ctx, run)
    return run.status


async def _wake_sweep(ctx: Context, run: RunRecord) -> None:
    """A sweep trial's run has ended: an eval objective ranks the trial now."""
    sweep_id = run.metadata.get(SWEEP_KEY)
    if sweep_id is not None:
        await sweep_schedule.wake_sweep(ctx, sweep_id)
