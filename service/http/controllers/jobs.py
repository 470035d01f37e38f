"""Fine-tuning jobs: OpenAI's `/v1/fine_tuning/jobs`, plus step metrics as JSON, CSV and SVG."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import MultiDict
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from service.domain.jobs.metrics import metrics_csv, metrics_json
from service.domain.jobs.request import JobRequest
from service.domain.jobs.states import JobEvent
from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of, require_org_key
from service.http.path_ids import require_wellformed_ids
from service.http.schemas.jobs import (
    FineTuningJob,
    FineTuningJobCheckpointList,
    FineTuningJobEventList,
    FineTuningJobList,
    JobMetrics,
)
from service.operations.jobs import create as jobs
from service.operations.jobs import views as job_views
from service.store.jobs import JobRecord

After = Annotated[str | None, QueryParameter(description="The id of the last object seen.")]
Limit = Annotated[int, QueryParameter(ge=1, le=100)]
MetadataFilter = Annotated[
    str | None,
    QueryParameter(
        description="Filter with metadata[key]=value (repeatable); metadata=null for none."
    ),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="Retrying with the same key and body returns the same job.",
    ),
]


def job_object(record: JobRecord) -> FineTuningJob:
    return FineTuningJob.model_validate(job_views.job_json(record))


def metadata_filter(query: MultiDict[str]) -> tuple[dict[str, str] | None, bool]:
    """OpenAI's `metadata[k]=v` filters (as the SDK sends them), and `metadata=null`."""
    pairs = {
        key.removeprefix("metadata[").removesuffix("]"): value
        for key, value in query.multi_items()
        if key.startswith("metadata[") and key.endswith("]")
    }
    return (pairs or None), query.get("metadata") == "null"


async def _control(request: Request[Any, Any, Any], job_id: str, event: JobEvent) -> FineTuningJob:
    request.state.audit_resource_id = job_id
    record = await jobs.control_job(context_of(request), principal_of(request), job_id, event)
    return job_object(record)


class JobsController(Controller):
    path = "/v1/fine_tuning/jobs"
    guards = [require_org_key, require_wellformed_ids]
    tags = ["fine-tuning"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.JOBS}

    @post("/", operation_id="jobs.create", status_code=200)
    async def create_job(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[JobRequest],
        idempotency_key: IdempotencyKey = None,
    ) -> FineTuningJob:
        ctx, principal, body = context_of(request), principal_of(request), await request.body()
        created = await jobs.create_job(ctx, principal, body, idempotency_key)
        request.state.audit_resource_id = created.record.id
        request.state.audit_details = jobs.audit_details(created)
        return job_object(created.record)

    @get("/", operation_id="jobs.list")
    async def list_jobs(
        self,
        request: Request[Any, Any, Any],
        after: After = None,
        limit: Limit = 20,
        metadata: MetadataFilter = None,
    ) -> FineTuningJobList:
        wanted, without = metadata_filter(request.query_params)
        records, more = await job_views.list_jobs(
            context_of(request),
            principal_of(request),
            after=after,
            limit=limit,
            metadata=wanted,
            without_metadata=without,
        )
        return FineTuningJobList(data=[job_object(record) for record in records], has_more=more)

    @get("/{job_id:str}", operation_id="jobs.retrieve")
    async def retrieve_job(
        self, request: Request[Any, Any, Any], job_id: FromPath[str]
    ) -> FineTuningJob:
        ctx, principal = context_of(request), principal_of(request)
        return job_object(await job_views.get_job(ctx, principal, job_id))

    @post("/{job_id:str}/cancel", operation_id="jobs.cancel", status_code=200)
    async def cancel_job(
        self, request: Request[Any, Any, Any], job_id: FromPath[str]
    ) -> FineTuningJob:
        return await _control(request, job_id, JobEvent.CANCEL)

    @post("/{job_id:str}/pause", operation_id="jobs.pause", status_code=200)
    async def pause_job(
        self, request: Request[Any, Any, Any], job_id: FromPath[str]
    ) -> FineTuningJob:
        return await _control(request, job_id, JobEvent.PAUSE)

    @post("/{job_id:str}/resume", operation_id="jobs.resume", status_code=200)
    async def resume_job(
        self, request: Request[Any, Any, Any], job_id: FromPath[str]
    ) -> FineTuningJob:
        return await _control(request, job_id, JobEvent.RESUME)

    @get("/{job_id:str}/events", operation_id="jobs.events")
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        after: After = None,
        limit: Limit = 20,
    ) -> FineTuningJobEventList:
        ctx, principal = context_of(request), principal_of(request)
        events, more = await job_views.list_events(ctx, principal, job_id, after=after, limit=limit)
        return FineTuningJobEventList.model_validate({"data": events, "has_more": more})

    @get("/{job_id:str}/checkpoints", operation_id="jobs.checkpoints")
    async def list_checkpoints(
        self,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        after: After = None,
        limit: Limit = 10,
    ) -> FineTuningJobCheckpointList:
        ctx, principal = context_of(request), principal_of(request)
        found, more = await job_views.list_checkpoints(
            ctx, principal, job_id, after=after, limit=limit
        )
        return FineTuningJobCheckpointList.model_validate(job_views.id_page(found, more))

    @get(
        "/{job_id:str}/metrics",
        operation_id="jobs.metrics",
        description="Step metrics as JSON (this schema), or CSV with `Accept: text/csv`.",
    )
    async def job_metrics(
        self, request: Request[Any, Any, Any], job_id: FromPath[str]
    ) -> Response[JobMetrics]:
        rows, total = await job_views.job_metrics(
            context_of(request), principal_of(request), job_id
        )
        if "text/csv" in request.headers.get("accept", ""):
            return Response(metrics_csv(rows), media_type="text/csv")  # type: ignore[arg-type]
        return Response(JobMetrics.model_validate(metrics_json(rows, total)))

    @get("/{job_id:str}/metrics.svg", operation_id="jobs.metrics_svg", media_type="image/svg+xml")
    async def job_metrics_svg(
        self, request: Request[Any, Any, Any], job_id: FromPath[str]
    ) -> Response[str]:
        svg = await job_views.job_chart(context_of(request), principal_of(request), job_id)
        return Response(svg, media_type="image/svg+xml")
