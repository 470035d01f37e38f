"""The console's models and aliases: the org's tuned and allowed base models (`GET /v1/models`),
its aliases, and setting or removing one (`PUT`/`DELETE /v1/aliases/{name}`'s operations)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template

from service.domain.tenancy.access import Capability, role_allows
from service.http.auth import context_of, principal_of
from service.http.console.session import EXCEPTION_HANDLERS, checked_form, page, require_session
from service.operations.inference import models

_ALIASES = {"org": True, "capability": Capability.ALIASES}


class ModelPages(Controller):
    path = "/console/models"
    include_in_schema = False
    guards = [require_session]
    exception_handlers = EXCEPTION_HANDLERS

    @get("/", opt={"org": True, "capability": Capability.MODELS_READ, "audit": "never"})
    async def models(self, request: Request[Any, Any, Any]) -> Template:
        ctx, principal = context_of(request), principal_of(request)
        org_id = principal.org_id or ""
        found = await models.list_models(ctx, org_id)
        aliases = await models.list_aliases(ctx.store, org_id)
        editable = role_allows(principal.role, Capability.ALIASES)  # type: ignore[arg-type]
        return page(request, "models.html", models=found, aliases=aliases, editable=editable)

    @post("/aliases", operation_id="console.aliases.put", opt=_ALIASES, status_code=303)
    async def put_alias(self, request: Request[Any, Any, Any]) -> Redirect:
        form = await checked_form(request)
        name, model = form.get("name", "").strip(), form.get("model", "").strip()
        request.state.audit_resource_id = name
        request.state.audit_details = {"model": model}
        await models.put_alias(context_of(request), principal_of(request).org_id or "", name, model)
        return Redirect("/console/models", status_code=303)

    @post("/aliases/delete", operation_id="console.aliases.delete", opt=_ALIASES, status_code=303)
    async def delete_alias(self, request: Request[Any, Any, Any]) -> Redirect:
        form = await checked_form(request)
        name = form.get("name", "")
        request.state.audit_resource_id = name
        await models.delete_alias(
            context_of(request).store, principal_of(request).org_id or "", name
        )
        return Redirect("/console/models", status_code=303)
