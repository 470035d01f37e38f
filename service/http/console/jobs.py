"""The console's org pages for fine-tuning: the overview, the jobs list and a job's page.

Each page makes the same operation calls as the `/v1` routes, with the session's principal.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template

from service.domain.jobs.states import JobEvent
from service.domain.tenancy.access import Capability, role_allows
from service.http.auth import context_of, principal_of
from service.http.console.session import EXCEPTION_HANDLERS, checked_form, page, require_session
from service.http.path_ids import require_wellformed_ids
from service.operations.inference.usage import date_range, usage_report
from service.operations.jobs import create as jobs
from service.operations.jobs import views as job_views

RUNNING = frozenset({"validating_files", "queued", "running", "paused"})
STATUSES = ("validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled")
PAGE_SIZE = 20
After = Annotated[str | None, QueryParameter()]
Limit = Annotated[int, QueryParameter(ge=1, le=100)]
_JOBS = {"org": True, "capability": Capability.JOBS}
_CONTROLS = {"cancel": JobEvent.CANCEL, "pause": JobEvent.PAUSE, "resume": JobEvent.RESUME}


async def _month_spend(request: Request[Any, Any, Any], org_id: str) -> float:
    today = dt.datetime.now(dt.UTC).date()
    days = date_range(today.replace(day=1), today)
    totals = await usage_report(context_of(request), org_id, days, [])
    return sum(total.cost for total in totals)


async def _job_page(request: Request[Any, Any, Any], job_id: str) -> dict[str, Any]:
    ctx, principal = context_of(request), principal_of(request)
    job = job_views.job_json(await job_views.get_job(ctx, principal, job_id))
    events, _ = await job_views.list_events(ctx, principal, job_id, after=None, limit=50)
    found, _ = await job_views.list_checkpoints(ctx, principal, job_id, after=None, limit=50)
    return {"job": job, "events": events, "checkpoints": found, "live": job["status"] in RUNNING}


class JobPages(Controller):
    path = "/console"
    include_in_schema = False
    guards = [require_session, require_wellformed_ids]
    exception_handlers = EXCEPTION_HANDLERS

    @get("/", opt={"audit": "never"})
    async def overview(self, request: Request[Any, Any, Any]) -> Response[Any]:
        principal = principal_of(request)
        if principal.is_operator:
            return Redirect("/console/orgs", status_code=303)
        records: list[Any] = []
        if principal.role != "inference":
            records, _ = await job_views.list_jobs(
                context_of(request), principal, after=None, limit=50
            )
        found = [job_views.job_json(record) for record in records]
        running = [job for job in found if job["status"] in RUNNING]
        failed = [job for job in found if job["status"] == "failed"][:5]
        spent = None
        if role_allows(principal.role, Capability.USAGE):  # type: ignore[arg-type]
            spent = await _month_spend(request, principal.org_id or "")
        return page(request, "overview.html", running=running, failed=failed, spent=spent)

    @get("/jobs", opt={**_JOBS, "audit": "never"})
    async def jobs(
        self,
        request: Request[Any, Any, Any],
        after: After = None,
        status: After = None,
        model: After = None,
        limit: Limit = PAGE_SIZE,
    ) -> Template:
        records, more = await job_views.list_jobs(
            context_of(request),
            principal_of(request),
            after=after,
            limit=limit,
            where=job_views.job_matches(status, model),
        )
        found = [job_views.job_json(record) for record in records]
        next_after = found[-1]["id"] if more and found else None
        query = {"status": status or "", "model": model or "", "limit": limit}
        context = {"jobs": found, "next_after": next_after, "query": query}
        return page(request, "jobs.html", statuses=STATUSES, **context)

    @get("/jobs/{job_id:str}", opt={**_JOBS, "audit": "never"})
    async def job(self, request: Request[Any, Any, Any], job_id: FromPath[str]) -> Template:
        return page(request, "job.html", **await _job_page(request, job_id))

    @get("/jobs/{job_id:str}/live", opt={**_JOBS, "audit": "never"})
    async def job_live(self, request: Request[Any, Any, Any], job_id: FromPath[str]) -> Template:
        return page(request, "job_live.html", **await _job_page(request, job_id))

    @get("/jobs/{job_id:str}/chart.svg", opt={**_JOBS, "audit": "never"})
    async def job_chart(
        self, request: Request[Any, Any, Any], job_id: FromPath[str]
    ) -> Response[str]:
        svg = await job_views.job_chart(context_of(request), principal_of(request), job_id)
        return Response(svg, media_type="image/svg+xml", headers={"cache-control": "no-store"})

    @post(
        [f"/jobs/{{job_id:str}}/{action}" for action in _CONTROLS],
        operation_id="console.jobs.control",
        opt=_JOBS,
        status_code=303,
    )
    async def control(self, request: Request[Any, Any, Any], job_id: FromPath[str]) -> Redirect:
        await checked_form(request)
        request.state.audit_resource_id = job_id
        event = _CONTROLS[request.url.path.rsplit("/", 1)[-1]]
        await jobs.control_job(context_of(request), principal_of(request), job_id, event)
        return Redirect(f"/console/jobs/{job_id}", status_code=303)
