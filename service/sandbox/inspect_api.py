"""The sandbox's own endpoints under `/_sandbox/`: request log, counts, job status changes,
faults, reset.

They act on the run of the request that calls them (see the package docstring).
"""

from __future__ import annotations

from litestar import Response, delete, get, post

from service.sandbox.inspection import parse_fault
from service.sandbox.state import Sandbox
from service.sandbox.web import AnyRequest, json_body, ok, run_of


@get("/_sandbox/requests")
async def list_requests(request: AnyRequest) -> Response[bytes]:
    run = run_of(request)
    query = request.query_params
    entries = run.log.select(query.get("method"), query.get("path_prefix"))
    limit = run.config.log_body_bytes
    return ok({"object": "list", "data": [entry.to_json(limit) for entry in entries]})


@delete("/_sandbox/requests", status_code=200)
async def clear_requests(request: AnyRequest) -> Response[bytes]:
    log = run_of(request).log
    deleted = len(log.entries)
    log.entries.clear()
    return ok({"deleted": deleted})


@get("/_sandbox/counts")
async def counts(request: AnyRequest) -> Response[bytes]:
    return ok(run_of(request).counts())


@get("/_sandbox/jobs/changes")
async def job_changes(request: AnyRequest) -> Response[bytes]:
    """Every job's status changes, each dated to the microsecond (its events say whole
    seconds): how far behind the upstream a watcher runs can be measured exactly."""
    run = run_of(request)
    run.advance_all()
    return ok({job_id: job.changes for job_id, job in run.jobs.items()})


@post("/_sandbox/faults", status_code=201)
async def add_fault(request: AnyRequest) -> Response[bytes]:
    fault = parse_fault(await json_body(request))
    run_of(request).faults.faults.append(fault)
    return ok(fault.to_json(), status=201)


@get("/_sandbox/faults")
async def list_faults(request: AnyRequest) -> Response[bytes]:
    faults = run_of(request).faults.faults
    return ok({"object": "list", "data": [fault.to_json() for fault in faults]})


@delete("/_sandbox/faults", status_code=200)
async def clear_faults(request: AnyRequest) -> Response[bytes]:
    faults = run_of(request).faults.faults
    deleted = len(faults)
    faults.clear()
    return ok({"deleted": deleted})


@post("/_sandbox/reset", status_code=200)
async def reset(request: AnyRequest) -> Response[bytes]:
    name = run_of(request).name
    sandbox: Sandbox = request.app.state.sandbox
    sandbox.reset(name)
    return ok({"reset": name})


HANDLERS = [
    list_requests,
    clear_requests,
    counts,
    job_changes,
    add_fault,
    list_faults,
    clear_faults,
    reset,
]
