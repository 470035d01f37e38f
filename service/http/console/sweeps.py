"""The console's sweeps: the list, and a sweep's trials table beside its chart, with early-stopped
trials marked and the best trial promoted to an alias (`POST /v1/sweeps/{id}/promote`'s
operation, and its role: aliases)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of
from service.http.console.session import EXCEPTION_HANDLERS, checked_form, page, require_session
from service.http.path_ids import require_wellformed_ids
from service.operations.sweeps import create as sweeps
from service.operations.sweeps import views as sweep_views

_JOBS = {"org": True, "capability": Capability.JOBS, "audit": "never"}
After = Annotated[str | None, QueryParameter()]


async def _sweep(request: Request[Any, Any, Any], sweep_id: str) -> dict[str, Any]:
    ctx = context_of(request)
    record = await sweep_views.get_sweep(ctx, principal_of(request), sweep_id)
    trials = await sweep_views.load_trials(ctx, record)
    return sweep_views.sweep_json(record, trials, ctx.prices)


class SweepPages(Controller):
    path = "/console/sweeps"
    include_in_schema = False
    guards = [require_session, require_wellformed_ids]
    exception_handlers = EXCEPTION_HANDLERS

    @get("/", opt=_JOBS)
    async def sweeps(self, request: Request[Any, Any, Any], after: After = None) -> Template:
        ctx = context_of(request)
        records, more = await sweep_views.list_sweeps(
            ctx, principal_of(request), after=after, limit=20
        )
        next_after = records[-1].id if more and records else None
        return page(request, "sweeps.html", sweeps=records, next_after=next_after)

    @get("/{sweep_id:str}", opt=_JOBS)
    async def sweep(self, request: Request[Any, Any, Any], sweep_id: FromPath[str]) -> Template:
        return page(request, "sweep.html", sweep=await _sweep(request, sweep_id), promoted=None)

    @get("/{sweep_id:str}/chart.svg", opt=_JOBS)
    async def chart(
        self, request: Request[Any, Any, Any], sweep_id: FromPath[str]
    ) -> Response[str]:
        ctx = context_of(request)
        record = await sweep_views.get_sweep(ctx, principal_of(request), sweep_id)
        svg = sweep_views.sweep_chart(record, await sweep_views.load_trials(ctx, record))
        return Response(svg, media_type="image/svg+xml", headers={"cache-control": "no-store"})

    @post(
        "/{sweep_id:str}/promote",
        operation_id="console.sweeps.promote",
        opt={"org": True, "capability": Capability.ALIASES},
        status_code=200,
    )
    async def promote(self, request: Request[Any, Any, Any], sweep_id: FromPath[str]) -> Template:
        form = await checked_form(request)
        request.state.audit_resource_id = sweep_id
        ctx, principal = context_of(request), principal_of(request)
        done = await sweeps.promote_best(ctx, principal, sweep_id, form.get("alias", "").strip())
        request.state.audit_details = {"alias": done.alias.name, "model": done.alias.model}
        sweep = await _sweep(request, sweep_id)
        return page(request, "sweep.html", sweep=sweep, promoted=done.alias)
