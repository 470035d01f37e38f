"""Models endpoints: `/v1/models`, `/v1/models/{model}` (retrieve, delete)."""

from __future__ import annotations

from litestar import Response, delete, get
from litestar.params import FromPath

from service.sandbox.errors import ApiError, model_not_found
from service.sandbox.objects import ALIASES, BASE_MODELS, base_model_json, list_json, resolve_base
from service.sandbox.web import AnyRequest, ok, run_of


@get("/v1/models")
async def list_models(request: AnyRequest) -> Response[bytes]:
    names = [*BASE_MODELS, *ALIASES]
    data = [base_model_json(name) for name in names]
    data += [m.to_json() for m in run_of(request).models.values() if m.listed]
    return ok(list_json(data))


@get("/v1/models/{model_id:str}")
async def retrieve_model(request: AnyRequest, model_id: FromPath[str]) -> Response[bytes]:
    run = run_of(request)
    if model_id in BASE_MODELS or model_id in ALIASES:
        return ok(base_model_json(model_id))
    if model_id not in run.models:
        raise model_not_found(model_id)
    return ok(run.models[model_id].to_json())


@delete("/v1/models/{model_id:str}", status_code=200)
async def delete_model(request: AnyRequest, model_id: FromPath[str]) -> Response[bytes]:
    run = run_of(request)
    if resolve_base(model_id) is not None:
        raise ApiError(403, f"You are not allowed to delete the base model {model_id}.")
    if model_id not in run.models:
        raise model_not_found(model_id)
    del run.models[model_id]
    return ok({"id": model_id, "object": "model", "deleted": True})


HANDLERS = [list_models, retrieve_model, delete_model]
