"""Hyperparameter sweeps: `/v1/sweeps`, grid or random search over fine-tuning jobs."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from service.domain.sweeps.request import SweepRequest
from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of, require_org_key
from service.http.path_ids import require_wellformed_ids
from service.http.schemas.sweeps import Sweep, SweepList, SweepPromote, SweepPromoted
from service.operations.sweeps import create as sweeps
from service.operations.sweeps import views as sweep_views
from service.store.sweeps import SweepRecord

After = Annotated[str | None, QueryParameter(description="The id of the last sweep seen.")]
Limit = Annotated[int, QueryParameter(ge=1, le=100)]


async def sweep_object(request: Request[Any, Any, Any], record: SweepRecord) -> Sweep:
    ctx = context_of(request)
    trials = await sweep_views.load_trials(ctx, record)
    return Sweep.model_validate(sweep_views.sweep_json(record, trials, ctx.prices))


class SweepsController(Controller):
    path = "/v1/sweeps"
    guards = [require_org_key, require_wellformed_ids]
    tags = ["sweeps"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.JOBS}

    @post("/", operation_id="sweeps.create", status_code=200)
    async def create_sweep(
        self, request: Request[Any, Any, Any], data: JSONBody[SweepRequest]
    ) -> Sweep:
        ctx, principal, body = context_of(request), principal_of(request), await request.body()
        record = await sweeps.create_sweep(ctx, principal, body)
        request.state.audit_resource_id = record.id
        request.state.audit_details = sweeps.audit_details(record)
        return await sweep_object(request, record)

    @get("/", operation_id="sweeps.list")
    async def list_sweeps(
        self, request: Request[Any, Any, Any], after: After = None, limit: Limit = 20
    ) -> SweepList:
        ctx, principal = context_of(request), principal_of(request)
        records, more = await sweep_views.list_sweeps(ctx, principal, after=after, limit=limit)
        found = [await sweep_object(request, record) for record in records]
        return SweepList(data=found, has_more=more)

    @get("/{sweep_id:str}", operation_id="sweeps.retrieve")
    async def retrieve_sweep(
        self, request: Request[Any, Any, Any], sweep_id: FromPath[str]
    ) -> Sweep:
        ctx, principal = context_of(request), principal_of(request)
        return await sweep_object(request, await sweep_views.get_sweep(ctx, principal, sweep_id))

    @post("/{sweep_id:str}/cancel", operation_id="sweeps.cancel", status_code=200)
    async def cancel_sweep(self, request: Request[Any, Any, Any], sweep_id: FromPath[str]) -> Sweep:
        request.state.audit_resource_id = sweep_id
        record = await sweeps.cancel_sweep(context_of(request), principal_of(request), sweep_id)
        return await sweep_object(request, record)

    @post(
        "/{sweep_id:str}/promote",
        operation_id="sweeps.promote",
        status_code=200,
        opt={"capability": Capability.ALIASES},
    )
    async def promote_sweep(
        self, request: Request[Any, Any, Any], sweep_id: FromPath[str], data: JSONBody[SweepPromote]
    ) -> SweepPromoted:
        request.state.audit_resource_id = sweep_id
        ctx, principal = context_of(request), principal_of(request)
        gate = data.require.gate() if data.require is not None else None
        done = await sweeps.promote_best(ctx, principal, sweep_id, data.alias, gate)
        request.state.audit_details = {"alias": done.alias.name, "model": done.alias.model}
        if data.require is not None:
            request.state.audit_details["require"] = data.require.model_dump()
        return SweepPromoted(
            name=done.alias.name,
            model=done.alias.model,
            sweep_id=sweep_id,
            trial=done.trial.record.index,
            job_id=done.trial.record.job_id,
        )

    @get("/{sweep_id:str}/chart.svg", operation_id="sweeps.chart_svg", media_type="image/svg+xml")
    async def sweep_chart(
        self, request: Request[Any, Any, Any], sweep_id: FromPath[str]
    ) -> Response[str]:
        ctx, principal = context_of(request), principal_of(request)
        record = await sweep_views.get_sweep(ctx, principal, sweep_id)
        svg = sweep_views.sweep_chart(record, await sweep_views.load_trials(ctx, record))
        return Response(svg, media_type="image/svg+xml")
