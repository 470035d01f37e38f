"""Reading fine-tuning jobs: OpenAI's job object, lists, events, checkpoints and step metrics.

Everything here reads what the workers stored, with one exception: the events and checkpoints
(and so the step metrics) of a job whose end the list walk saw before its last events were read
are read first (`jobs.watch.sync_now`), so a caller who sees `succeeded` finds them all.
Another org's job answers exactly like a job that does not exist. Pages follow OpenAI: newest
first, `after` an object id, `has_more`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, TypeVar

from service.domain.charts.annotations import JobFacts
from service.domain.charts.charts import render_metrics_svg
from service.domain.jobs.metrics import (
    StepRow,
    merge_rows,
    rows_from_checkpoints,
    rows_from_events,
    total_steps,
)
from service.domain.jobs.request import JobRequest, method_hyperparameters
from service.domain.jobs.states import public_status
from service.domain.tenancy.access import Principal
from service.errors import NotFound, UpstreamError
from service.logging import get_logger
from service.operations.context import Context
from service.operations.jobs import watch as job_watch
from service.store.jobs import JobRecord

T = TypeVar("T")
log = get_logger(__name__)
AUTO_HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")


def job_json(record: JobRecord) -> dict[str, Any]:
    """OpenAI's `fine_tuning.job` object; ids are tunegate's, upstream ones never show."""
    request = record.request
    validation = request.get("validation_file") or (record.split_files or [None, None])[1]
    job: dict[str, Any] = {
        "object": "fine_tuning.job",
        "id": record.id,
        "model": request["model"],
        "created_at": record.created_at,
        "finished_at": record.finished_at,
        "fine_tuned_model": record.fine_tuned_model,
        "organization_id": record.org_id,
        "result_files": [],
        "status": public_status(record.state),
        "training_file": request["training_file"],
        "validation_file": validation,
        "hyperparameters": hyperparameters(record),
        "trained_tokens": record.trained_tokens,
        "error": record.error,
        "user_provided_suffix": request.get("suffix"),
        "seed": record.seed,
        "estimated_finish": record.estimated_finish,
        "integrations": request.get("integrations") or [],
        "metadata": request.get("metadata"),
        "method": record.method or request.get("method"),
    }
    if request.get("validation_split") is not None:
        job["validation_split"] = request["validation_split"]
    if request.get("eval_id") is not None:
        job["eval_id"] = request["eval_id"]
        job["eval_runs"] = record.eval_runs
        job["eval_error"] = record.eval_error
    return job


def hyperparameters(record: JobRecord) -> dict[str, Any]:
    """What the upstream resolved, once it has; until then what was asked, else "auto"."""
    if record.hyperparameters:
        return record.hyperparameters
    asked = method_hyperparameters(JobRequest.model_validate(record.request))
    return {name: asked.get(name, "auto") for name in AUTO_HYPERPARAMETERS} | asked


def job_not_found(job_id: str) -> NotFound:
    return NotFound(
        f"Could not find fine-tuning job: {job_id}",
        param="fine_tuning_job_id",
        code="fine_tune_not_found",
    )


async def get_job(ctx: Context, principal: Principal, job_id: str) -> JobRecord:
    record = await ctx.store.jobs.get(job_id)
    if record is None or record.org_id != principal.org_id:
        raise job_not_found(job_id)
    return record


async def synced(ctx: Context, record: JobRecord) -> None:
    """An ended job's last events and checkpoints read, if its `sync` step is still to run. An
    upstream that fails now leaves them to the worker's `sync` (and its backoff): the caller
    gets what is stored."""
    if "sync" not in record.pending or ctx.upstream is None:
        return
    try:
        await job_watch.sync_now(ctx, record.id)
    except UpstreamError:
        log.warning("job_sync_failed", job_id=record.id, exc_info=True)


async def list_jobs(
    ctx: Context,
    principal: Principal,
    *,
    after: str | None,
    limit: int,
    metadata: Mapping[str, str] | None = None,
    without_metadata: bool = False,
    where: Callable[[JobRecord], bool] | None = None,
) -> tuple[list[JobRecord], bool]:
    """A page of the org's jobs, newest first; `metadata` keeps jobs carrying all its pairs and
    `where` those it accepts, before the page is cut (so every page is a page of matches)."""
    org_id = principal.org_id or ""
    if metadata is None and not without_metadata and where is None:
        page_ids, more = await ctx.store.jobs.page_ids(org_id, after, limit)
        return await ctx.store.jobs.many(page_ids), more
    ids = await ctx.store.jobs.list_ids(org_id)
    records = [
        record
        for record in await ctx.store.jobs.many(ids)
        if _metadata_matches(record.request.get("metadata"), metadata, without_metadata)
        and (where is None or where(record))
    ]
    return page(records, after, limit, lambda record: record.id)


def job_matches(status: str | None, text: str | None) -> Callable[[JobRecord], bool] | None:
    """A filter on the public status and on a text found (any case) in the base model, the
    suffix or the tuned model's name; None when neither is asked."""
    wanted = (text or "").strip().lower()
    if not status and not wanted:
        return None

    def matches(record: JobRecord) -> bool:
        if status and public_status(record.state) != status:
            return False
        names = (record.request.get("model"), record.request.get("suffix"), record.fine_tuned_model)
        return not wanted or any(wanted in (name or "").lower() for name in names)

    return matches


def _metadata_matches(
    found: Mapping[str, str] | None, wanted: Mapping[str, str] | None, without: bool
) -> bool:
    if without:
        return not found
    return all((found or {}).get(key) == value for key, value in (wanted or {}).items())


async def list_events(
    ctx: Context, principal: Principal, job_id: str, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    await synced(ctx, await get_job(ctx, principal, job_id))
    newest_first = list(reversed(await ctx.store.jobs.events(job_id)))
    return page(newest_first, after, limit, lambda event: str(event["id"]))


async def list_checkpoints(
    ctx: Context, principal: Principal, job_id: str, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    await synced(ctx, await get_job(ctx, principal, job_id))
    checkpoints = await ctx.store.jobs.checkpoints(job_id)
    return page(checkpoints, after, limit, lambda checkpoint: str(checkpoint["id"]))


async def job_metrics(
    ctx: Context, principal: Principal, job_id: str
) -> tuple[list[StepRow], int | None]:
    """Step metrics: the result file's (once the job has one), then the metric events', then
    the checkpoints' (the only `full_valid_*` values); and the total step count."""
    await synced(ctx, await get_job(ctx, principal, job_id))
    return await stored_metrics(ctx, job_id)


async def job_chart(ctx: Context, principal: Principal, job_id: str) -> str:
    """The job's loss and accuracy chart as SVG, titled by the job and spanning all its steps;
    the API's `metrics.svg` and the console draw the same one."""
    record = await get_job(ctx, principal, job_id)
    await synced(ctx, record)
    rows, total = await stored_metrics(ctx, job_id)
    facts = JobFacts(
        model=record.request["model"],
        status=public_status(record.state),
        suffix=record.request.get("suffix"),
        hyperparameters=hyperparameters(record),
        total_steps=total,
    )
    return render_metrics_svg(rows, job=facts)


async def stored_metrics(ctx: Context, job_id: str) -> tuple[list[StepRow], int | None]:
    events = await ctx.store.jobs.events(job_id)
    from_file = [StepRow(**row) for row in await ctx.store.jobs.metrics(job_id)]
    checkpoints = rows_from_checkpoints(await ctx.store.jobs.checkpoints(job_id))
    rows = merge_rows(from_file, rows_from_events(events), checkpoints)
    return rows, total_steps(events)


def metrics_rows_json(rows: list[StepRow]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]


def page(
    items: list[T], after: str | None, limit: int, id_of: Callable[[T], str]
) -> tuple[list[T], bool]:
    """The `limit` items after the one whose id is `after` (from the start when None)."""
    if after is not None:
        ids = [id_of(item) for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    return items[:limit], len(items) > limit


def id_page(items: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    """An OpenAI list page that also names its first and last ids."""
    return {
        "data": items,
        "has_more": more,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
    }
