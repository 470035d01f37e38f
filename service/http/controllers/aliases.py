"""Aliases: `/v1/aliases/{name}`, a stable model name of the org that routes to a tuned model
(or an allowed base model), so callers keep their code when the model behind it is retrained."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, delete, get, put
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of, require_org_key
from service.http.path_ids import require_wellformed_ids
from service.http.schemas.common import PromoteRequirement
from service.operations.evals import gate as promote_gate
from service.operations.inference import models
from service.operations.inference.models import Alias


class AliasUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    require: PromoteRequirement | None = None


class AliasObject(BaseModel):
    object: Literal["alias"] = "alias"
    name: str
    model: str


class AliasList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AliasObject]


class AliasDeleted(BaseModel):
    name: str
    object: Literal["alias"] = "alias"
    deleted: bool = True


def alias_object(alias: Alias) -> AliasObject:
    return AliasObject(name=alias.name, model=alias.model)


def org_of(request: Request[Any, Any, Any]) -> str:
    return principal_of(request).org_id or ""


class AliasesController(Controller):
    path = "/v1/aliases"
    guards = [require_org_key, require_wellformed_ids]
    tags = ["aliases"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.ALIASES}

    @get("/", operation_id="aliases.list")
    async def list_aliases(self, request: Request[Any, Any, Any]) -> AliasList:
        found = await models.list_aliases(context_of(request).store, org_of(request))
        return AliasList(data=[alias_object(alias) for alias in found])

    @get("/{name:str}", operation_id="aliases.retrieve")
    async def get_alias(self, request: Request[Any, Any, Any], name: FromPath[str]) -> AliasObject:
        return alias_object(
            await models.get_alias(context_of(request).store, org_of(request), name)
        )

    @put("/{name:str}", operation_id="aliases.put")
    async def put_alias(
        self, request: Request[Any, Any, Any], name: FromPath[str], data: JSONBody[AliasUpdate]
    ) -> AliasObject:
        request.state.audit_resource_id = name
        request.state.audit_details = {"model": data.model}
        if data.require is not None:
            await promote_gate.check_alias(
                context_of(request), principal_of(request), name, data.model, data.require.gate()
            )
            request.state.audit_details["require"] = data.require.model_dump()
        alias = await models.put_alias(context_of(request), org_of(request), name, data.model)
        return alias_object(alias)

    @delete("/{name:str}", operation_id="aliases.delete", status_code=200)
    async def delete_alias(
        self, request: Request[Any, Any, Any], name: FromPath[str]
    ) -> AliasDeleted:
        request.state.audit_resource_id = name
        await models.delete_alias(context_of(request).store, org_of(request), name)
        return AliasDeleted(name=name)
