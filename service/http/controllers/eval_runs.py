"""An eval's runs in OpenAI's shape: `/v1/evals/{eval_id}/runs` (create, list, retrieve,
cancel, delete) and each run's output items."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath

from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of, require_org_key
from service.http.controllers.evals import After, Limit, Order, page
from service.http.path_ids import require_wellformed_ids
from service.operations.evals import runs


class EvalRunsController(Controller):
    path = "/v1/evals/{eval_id:str}/runs"
    guards = [require_org_key, require_wellformed_ids]
    tags = ["evals"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.JOBS}

    @post("/", operation_id="evals.runs.create", status_code=200)
    async def create_run(
        self, request: Request[Any, Any, Any], eval_id: FromPath[str]
    ) -> dict[str, Any]:
        ctx, principal, body = context_of(request), principal_of(request), await request.body()
        run = await runs.create_run(ctx, principal, eval_id, body)
        request.state.audit_resource_id = run.id
        return runs.run_json(run)

    @get("/", operation_id="evals.runs.list")
    async def list_runs(
        self,
        request: Request[Any, Any, Any],
        eval_id: FromPath[str],
        after: After = None,
        limit: Limit = 20,
        order: Order = "asc",
    ) -> dict[str, Any]:
        ctx, principal = context_of(request), principal_of(request)
        found, more = await runs.list_runs(
            ctx, principal, eval_id, after=after, limit=limit, order=order
        )
        return page([runs.run_json(run) for run in found], more)

    @get("/{run_id:str}", operation_id="evals.runs.retrieve")
    async def retrieve_run(
        self, request: Request[Any, Any, Any], eval_id: FromPath[str], run_id: FromPath[str]
    ) -> dict[str, Any]:
        ctx, principal = context_of(request), principal_of(request)
        return runs.run_json(await runs.get_run(ctx, principal, eval_id, run_id))

    @post("/{run_id:str}/cancel", operation_id="evals.runs.cancel", status_code=200)
    async def cancel_run(
        self, request: Request[Any, Any, Any], eval_id: FromPath[str], run_id: FromPath[str]
    ) -> dict[str, Any]:
        request.state.audit_resource_id = run_id
        ctx, principal = context_of(request), principal_of(request)
        return runs.run_json(await runs.cancel_run(ctx, principal, eval_id, run_id))

    @delete("/{run_id:str}", operation_id="evals.runs.delete", status_code=200)
    async def delete_run(
        self, request: Request[Any, Any, Any], eval_id: FromPath[str], run_id: FromPath[str]
    ) -> dict[str, Any]:
        request.state.audit_resource_id = run_id
        await runs.delete_run(context_of(request), principal_of(request), eval_id, run_id)
        return {"object": "eval.run.deleted", "deleted": True, "run_id": run_id}

    @get("/{run_id:str}/output_items", operation_id="evals.runs.output_items.list")
    async def list_output_items(
        self, request: Request[Any, Any, Any], eval_id: FromPath[str], run_id: FromPath[str]
    ) -> dict[str, Any]:
        ctx, principal = context_of(request), principal_of(request)
        return page(await runs.output_items(ctx, principal, eval_id, run_id), False)

    @get(
        "/{run_id:str}/output_items/{output_item_id:str}",
        operation_id="evals.runs.output_items.retrieve",
    )
    async def retrieve_output_item(
        self,
        request: Request[Any, Any, Any],
        eval_id: FromPath[str],
        run_id: FromPath[str],
        output_item_id: FromPath[str],
    ) -> dict[str, Any]:
        ctx, principal = context_of(request), principal_of(request)
        return await runs.output_item(ctx, principal, eval_id, run_id, output_item_id)
