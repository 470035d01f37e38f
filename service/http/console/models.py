"""The console's models and aliases: the org's tuned and allowed base models (`GET /v1/models`),
its aliases, and setting or removing one (`PUT`/`DELETE /v1/aliases/{name}`'s operations); and
the playground, one prompt to two models side by side through the proxy."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template

from service.domain.tenancy.access import Capability, role_allows
from service.http.auth import context_of, principal_of
from service.http.console.session import EXCEPTION_HANDLERS, checked_form, page, require_session
from service.http.errors import status_and_type
from service.operations.inference import models, playground

_ALIASES = {"org": True, "capability": Capability.ALIASES}
_INFERENCE = {"org": True, "capability": Capability.INFERENCE}


async def _model_ids(request: Request[Any, Any, Any]) -> list[str]:
    org_id = principal_of(request).org_id or ""
    store = context_of(request).store
    found = [info.id for info in await models.list_models(context_of(request), org_id)]
    return [alias.name for alias in await models.list_aliases(store, org_id)] + found


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

    @get("/playground", opt={**_INFERENCE, "audit": "never"})
    async def playground(self, request: Request[Any, Any, Any]) -> Template:
        choices = await _model_ids(request)
        return page(
            request,
            "playground.html",
            models=choices,
            answers=None,
            prompt="",
            chosen=[*choices[:2], "", ""][:2],
        )

    # Each proxied call writes its own audit record, as on /v1/chat/completions.
    @post(
        "/playground",
        operation_id="console.playground",
        opt={**_INFERENCE, "audit": "self"},
        status_code=200,
    )
    async def ask(self, request: Request[Any, Any, Any]) -> Template:
        form = await checked_form(request)
        prompt, chosen = form.get("prompt", ""), [form.get("model_a", ""), form.get("model_b", "")]
        answers = await playground.compare(
            context_of(request),
            principal_of(request),
            prompt,
            chosen,
            lambda error: status_and_type(error)[0],
            request.state.get("request_id"),
            request.client.host if request.client else None,
        )
        choices = await _model_ids(request)
        return page(
            request,
            "playground.html",
            models=choices,
            answers=answers,
            prompt=prompt,
            chosen=chosen,
        )
