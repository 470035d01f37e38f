"""Evals in OpenAI's shape: `/v1/evals` (create, list, retrieve, update, delete), and
tunegate's comparison of two of an eval's runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, QueryParameter

from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of, require_org_key
from service.http.path_ids import require_wellformed_ids
from service.operations.evals import evals
from service.operations.evals import runs as eval_runs

After = Annotated[str | None, QueryParameter(description="The id of the last eval seen.")]
Limit = Annotated[int, QueryParameter(ge=1, le=100)]
Order = Annotated[Literal["asc", "desc"], QueryParameter()]
Runs = Annotated[str | None, QueryParameter(description="Two run ids of this eval: `a,b`.")]


def page(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": more}


class EvalsController(Controller):
    path = "/v1/evals"
    guards = [require_org_key, require_wellformed_ids]
    tags = ["evals"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.JOBS}

    @post("/", operation_id="evals.create", status_code=200)
    async def create_eval(self, request: Request[Any, Any, Any]) -> dict[str, Any]:
        ctx, principal, body = context_of(request), principal_of(request), await request.body()
        record = await evals.create_eval(ctx, principal, body)
        request.state.audit_resource_id = record.id
        return evals.eval_json(record)

    @get("/", operation_id="evals.list")
    async def list_evals(
        self,
        request: Request[Any, Any, Any],
        after: After = None,
        limit: Limit = 20,
        order: Order = "asc",
    ) -> dict[str, Any]:
        ctx, principal = context_of(request), principal_of(request)
        found, more = await evals.list_evals(ctx, principal, after=after, limit=limit, order=order)
        return page([evals.eval_json(record) for record in found], more)

    @get("/{eval_id:str}", operation_id="evals.retrieve")
    async def retrieve_eval(
        self, request: Request[Any, Any, Any], eval_id: FromPath[str]
    ) -> dict[str, Any]:
        record = await evals.get_eval(context_of(request), principal_of(request), eval_id)
        return evals.eval_json(record)

    @post("/{eval_id:str}", operation_id="evals.update", status_code=200)
    async def update_eval(
        self, request: Request[Any, Any, Any], eval_id: FromPath[str]
    ) -> dict[str, Any]:
        request.state.audit_resource_id = eval_id
        ctx, principal, body = context_of(request), principal_of(request), await request.body()
        return evals.eval_json(await evals.update_eval(ctx, principal, eval_id, body))

    @delete("/{eval_id:str}", operation_id="evals.delete", status_code=200)
    async def delete_eval(
        self, request: Request[Any, Any, Any], eval_id: FromPath[str]
    ) -> dict[str, Any]:
        request.state.audit_resource_id = eval_id
        await evals.delete_eval(context_of(request), principal_of(request), eval_id)
        return {"object": "eval.deleted", "deleted": True, "eval_id": eval_id}

    @get("/{eval_id:str}/compare", operation_id="evals.compare")
    async def compare_runs(
        self, request: Request[Any, Any, Any], eval_id: FromPath[str], runs: Runs = None
    ) -> dict[str, Any]:
        ctx, principal = context_of(request), principal_of(request)
        return await eval_runs.compare_runs(ctx, principal, eval_id, runs)
