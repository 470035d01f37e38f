"""Models: OpenAI's `/v1/models` — the org's tuned models and the base models its policy allows."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, delete, get
from litestar.params import FromPath
from pydantic import BaseModel

from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of, require_org_key
from service.http.path_ids import require_wellformed_ids
from service.operations.inference import models
from service.operations.inference.models import ModelInfo


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool = True


def model_object(info: ModelInfo) -> ModelObject:
    return ModelObject(id=info.id, created=info.created, owned_by=info.owned_by)


class ModelsController(Controller):
    path = "/v1/models"
    guards = [require_org_key, require_wellformed_ids]
    tags = ["models"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.MODELS_READ}

    @get("/", operation_id="models.list")
    async def list_models(self, request: Request[Any, Any, Any]) -> ModelList:
        org_id = principal_of(request).org_id or ""
        found = await models.list_models(context_of(request), org_id)
        return ModelList(data=[model_object(info) for info in found])

    @get("/{model_id:str}", operation_id="models.retrieve")
    async def get_model(
        self, request: Request[Any, Any, Any], model_id: FromPath[str]
    ) -> ModelObject:
        org_id = principal_of(request).org_id or ""
        return model_object(await models.get_model(context_of(request), org_id, model_id))

    @delete(
        "/{model_id:str}",
        operation_id="models.delete",
        status_code=200,
        opt={"capability": Capability.MODELS_WRITE},
    )
    async def delete_model(
        self, request: Request[Any, Any, Any], model_id: FromPath[str]
    ) -> ModelDeleted:
        request.state.audit_resource_id = model_id
        await models.delete_model(context_of(request), principal_of(request).org_id or "", model_id)
        return ModelDeleted(id=model_id)
