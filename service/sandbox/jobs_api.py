"""Fine-tuning endpoints: `/v1/fine_tuning/jobs...` (create, list, retrieve, control, events,
checkpoints). Every read first advances the jobs it shows."""

from __future__ import annotations

import time
from collections.abc import Callable

from litestar import Response, get, post
from litestar.datastructures import MultiDict
from litestar.params import FromPath

from service.sandbox import jobs
from service.sandbox.errors import ApiError
from service.sandbox.job_create import build_job
from service.sandbox.jobs import Job, Outputs, job_json
from service.sandbox.objects import JSON, list_json, paginate
from service.sandbox.state import Run
from service.sandbox.web import AnyRequest, json_body, limit_of, ok, run_of


def _job(run: Run, job_id: str) -> Job:
    job = run.jobs.get(job_id)
    if job is None:
        message = f"Could not find fine-tuning job: {job_id}"
        raise ApiError(404, message, param="fine_tuning_job_id", code="fine_tune_not_found")
    jobs.advance(job, run.outputs)
    return job


def _metadata_filter(query: MultiDict[str]) -> Callable[[Job], bool]:
    if query.get("metadata") == "null":
        return lambda job: job.request.get("metadata") is None
    wanted = {
        key[len("metadata[") : -1]: value
        for key, value in query.multi_items()
        if key.startswith("metadata[") and key.endswith("]")
    }

    def matches(job: Job) -> bool:
        metadata = job.request.get("metadata") or {}
        return all(metadata.get(key) == value for key, value in wanted.items())

    return matches


@post("/v1/fine_tuning/jobs", status_code=200)
async def create_job(request: AnyRequest) -> Response[bytes]:
    run = run_of(request)
    job = build_job(await json_body(request), run.files, run.models, run.config)
    run.jobs[job.id] = job
    job.add_event(time.time(), f"Created fine-tuning job: {job.id}")
    files = job.request["training_file"]
    if job.request.get("validation_file"):
        files += f" and validation file: {job.request['validation_file']}"
    job.add_event(time.time(), f"Validating training file: {files}")
    return ok(job_json(job, run.config.organization_id))


@get("/v1/fine_tuning/jobs")
async def list_jobs(request: AnyRequest) -> Response[bytes]:
    run = run_of(request)
    matches = _metadata_filter(request.query_params)
    selected = [job for job in reversed(run.jobs.values()) if matches(job)]
    after = request.query_params.get("after")
    chunk, more = paginate(selected, after, limit_of(request, 20, 100), lambda j: j.id)
    outputs = run.outputs
    for job in chunk:
        jobs.advance(job, outputs)
    return ok(list_json([job_json(j, run.config.organization_id) for j in chunk], more))


@get("/v1/fine_tuning/jobs/{job_id:str}")
async def retrieve_job(request: AnyRequest, job_id: FromPath[str]) -> Response[bytes]:
    run = run_of(request)
    return ok(job_json(_job(run, job_id), run.config.organization_id))


def _control(action: Callable[[Job, Outputs], None]) -> Callable[[Run, str], JSON]:
    def apply(run: Run, job_id: str) -> JSON:
        job = _job(run, job_id)
        action(job, run.outputs)
        return job_json(job, run.config.organization_id)

    return apply


CANCEL, PAUSE, RESUME = _control(jobs.cancel), _control(jobs.pause), _control(jobs.resume)


@post("/v1/fine_tuning/jobs/{job_id:str}/cancel", status_code=200)
async def cancel_job(request: AnyRequest, job_id: FromPath[str]) -> Response[bytes]:
    return ok(CANCEL(run_of(request), job_id))


@post("/v1/fine_tuning/jobs/{job_id:str}/pause", status_code=200)
async def pause_job(request: AnyRequest, job_id: FromPath[str]) -> Response[bytes]:
    return ok(PAUSE(run_of(request), job_id))


@post("/v1/fine_tuning/jobs/{job_id:str}/resume", status_code=200)
async def resume_job(request: AnyRequest, job_id: FromPath[str]) -> Response[bytes]:
    return ok(RESUME(run_of(request), job_id))


@get("/v1/fine_tuning/jobs/{job_id:str}/events")
async def list_events(request: AnyRequest, job_id: FromPath[str]) -> Response[bytes]:
    events = list(reversed(_job(run_of(request), job_id).events))
    after = request.query_params.get("after")
    chunk, more = paginate(events, after, limit_of(request, 20, 100), lambda e: e.id)
    return ok(list_json([e.to_json() for e in chunk], more))


@get("/v1/fine_tuning/jobs/{job_id:str}/checkpoints")
async def list_checkpoints(request: AnyRequest, job_id: FromPath[str]) -> Response[bytes]:
    checkpoints = list(reversed(_job(run_of(request), job_id).checkpoints))
    after = request.query_params.get("after")
    chunk, more = paginate(checkpoints, after, limit_of(request, 10, 100), lambda c: c["id"])
    return ok(list_json(chunk, more))


HANDLERS = [
    create_job,
    list_jobs,
    retrieve_job,
    cancel_job,
    pause_job,
    resume_job,
    list_events,
    list_checkpoints,
]
