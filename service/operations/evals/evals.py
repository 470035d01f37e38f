"""An org's evals: created from OpenAI's body (checked by `domain.evals.request`), read back in
OpenAI's shape, renamed or re-labelled, deleted. Another org's eval is an unknown one."""

from __future__ import annotations

import time
from typing import Any, Literal

from service.domain.evals.request import (
    Body,
    EvalCreate,
    grader_models,
    parse_eval,
    parse_eval_update,
    response_schema,
)
from service.domain.inference.request import route_model
from service.domain.tenancy.access import Principal
from service.errors import InvalidRequest, NotFound
from service.ids import new_id
from service.operations.context import Context
from service.store.evals import EvalRecord


def eval_not_found(eval_id: str) -> NotFound:
    return NotFound(f"Eval with id '{eval_id}' not found.", param="eval_id", code="not_found")


def eval_json(record: EvalRecord) -> dict[str, Any]:
    source = record.data_source_config
    return {
        "object": "eval",
        "id": record.id,
        "name": record.name,
        "created_at": record.created_at,
        "metadata": record.metadata,
        "data_source_config": {"type": source["type"], "schema": response_schema(source)},
        "testing_criteria": record.testing_criteria,
    }


async def check_graders(ctx: Context, principal: Principal, created: EvalCreate) -> None:
    """A model grader's model must route for the org as a proxied call would (its policy's
    allowed models, its own tuned models and aliases), or the eval is refused up front."""
    view = await ctx.store.models.caller(principal.key_id or "")
    if view is None:
        return
    for param, model in grader_models(created):
        if route_model(model, view.org.policy, view.models, view.aliases) is None:
            message = f"The grader model '{model}' is not available to this org (see its policy)."
            raise InvalidRequest(message, param=param, code="model_not_found")


async def create_eval(ctx: Context, principal: Principal, body: Body) -> EvalRecord:
    created = parse_eval(body)
    await check_graders(ctx, principal, created)
    now = time.time()
    record = EvalRecord(
        id=new_id("eval_"),
        org_id=principal.org_id or "",
        created_at=int(now),
        seq=now,
        name=created.name or "",
        metadata=created.metadata or {},
        data_source_config=created.data_source_config.model_dump(mode="json"),
        testing_criteria=[
            c.model_dump(mode="json", exclude_none=True) for c in created.testing_criteria
        ],
    )
    await ctx.store.evals.put(record)
    return record


async def get_eval(ctx: Context, principal: Principal, eval_id: str) -> EvalRecord:
    record = await ctx.store.evals.get(eval_id)
    if record is None or record.org_id != principal.org_id:
        raise eval_not_found(eval_id)
    return record


async def update_eval(ctx: Context, principal: Principal, eval_id: str, body: Body) -> EvalRecord:
    change = parse_eval_update(body)
    record = await get_eval(ctx, principal, eval_id)
    if change.name is not None:
        record.name = change.name
    if change.metadata is not None:
        record.metadata = change.metadata
    await ctx.store.evals.put(record)
    return record


async def delete_eval(ctx: Context, principal: Principal, eval_id: str) -> None:
    await ctx.store.evals.delete(await get_eval(ctx, principal, eval_id))


async def list_evals(
    ctx: Context,
    principal: Principal,
    *,
    after: str | None,
    limit: int,
    order: Literal["asc", "desc"],
) -> tuple[list[EvalRecord], bool]:
    org = principal.org_id or ""
    return await ctx.store.evals.page(org, after, limit, newest_first=order == "desc")
