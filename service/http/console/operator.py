"""The operator's console pages: orgs (create; the policy editor, validated by the same `Policy`
model as `PUT /admin/orgs/{org_id}/policy`; keys, shown once when created, and revoked) and the
gateway's health (Redis, live workers, the task queue's depth, whether the upstream answers).
They call the same operations as `/admin`."""

from __future__ import annotations

import json
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from pydantic import ValidationError

from service.domain.tenancy.access import ROLES
from service.domain.tenancy.policy import Policy
from service.errors import InvalidRequest
from service.http.auth import context_of
from service.http.console.session import (
    EXCEPTION_HANDLERS,
    PageNo,
    checked_form,
    page,
    paged,
    require_session,
)
from service.http.path_ids import require_wellformed_ids
from service.operations import health as gateway_health
from service.operations.tenancy import orgs as tenancy

FIELD_HELP = {name: field.description or "" for name, field in Policy.model_fields.items()}
_OPERATOR = {"operator": True}
_READ = {"operator": True, "audit": "never"}


def _policy_from(text: str) -> Policy:
    try:
        return Policy.model_validate(json.loads(text or "{}"))
    except (ValueError, ValidationError) as error:
        raise InvalidRequest(f"The policy is not valid: {error}", param="policy") from None


async def _org_page(request: Request[Any, Any, Any], org_id: str, **extra: Any) -> Template:
    store = context_of(request).store
    org = await tenancy.get_org(store, org_id)
    found = await tenancy.list_keys(store, org_id)
    policy = json.dumps(org.policy.model_dump(mode="json"), indent=2)
    context = {"org": org, "keys": found, "roles": ROLES, "policy": policy, "new_key": None}
    context["field_help"] = FIELD_HELP
    return page(request, "org.html", **{**context, **extra})


class OperatorPages(Controller):
    path = "/console"
    include_in_schema = False
    guards = [require_session, require_wellformed_ids]
    exception_handlers = EXCEPTION_HANDLERS

    @get("/orgs", opt=_READ)
    async def orgs(self, request: Request[Any, Any, Any], page_no: PageNo = None) -> Template:
        found = await context_of(request).store.tenancy.list_orgs()
        return page(request, "orgs.html", **paged(found, page_no))

    @post("/orgs", operation_id="console.orgs.create", opt=_OPERATOR, status_code=303)
    async def create_org(self, request: Request[Any, Any, Any]) -> Redirect:
        form = await checked_form(request)
        name = form.get("name", "").strip()
        if not name:
            raise InvalidRequest("An org needs a name.", param="name")
        ctx = context_of(request)
        org = await tenancy.create_org(
            ctx.store, name, None, networks=ctx.settings.webhook_networks
        )
        request.state.audit_org_id = request.state.audit_resource_id = org.id
        return Redirect(f"/console/orgs/{org.id}", status_code=303)

    @get("/orgs/{org_id:str}", opt=_READ)
    async def org(self, request: Request[Any, Any, Any], org_id: FromPath[str]) -> Template:
        return await _org_page(request, org_id)

    @post(
        "/orgs/{org_id:str}/policy",
        operation_id="console.orgs.policy",
        opt=_OPERATOR,
        status_code=303,
    )
    async def replace_policy(
        self, request: Request[Any, Any, Any], org_id: FromPath[str]
    ) -> Redirect:
        form = await checked_form(request)
        request.state.audit_resource_id = org_id
        policy = _policy_from(form.get("policy", ""))
        request.state.audit_details = {"policy": policy.model_dump(mode="json")}
        ctx = context_of(request)
        networks = ctx.settings.webhook_networks
        await tenancy.replace_policy(ctx.store, org_id, policy, networks=networks)
        return Redirect(f"/console/orgs/{org_id}", status_code=303)

    @post(
        "/orgs/{org_id:str}/keys",
        operation_id="console.keys.create",
        opt=_OPERATOR,
        status_code=200,
    )
    async def create_key(self, request: Request[Any, Any, Any], org_id: FromPath[str]) -> Template:
        form = await checked_form(request)
        role = form.get("role", "")
        if role not in ROLES:
            raise InvalidRequest(f"Unknown role '{role}'.", param="role")
        store = context_of(request).store
        record, issued = await tenancy.create_key(
            store, org_id, form.get("name") or "console", role
        )  # type: ignore[arg-type]
        request.state.audit_resource_id = record.id
        request.state.audit_details = {"name": record.name, "role": record.role}
        return await _org_page(request, org_id, new_key=issued.plaintext)

    @post(
        "/orgs/{org_id:str}/keys/{key_id:str}/revoke",
        operation_id="console.keys.revoke",
        opt=_OPERATOR,
        status_code=303,
    )
    async def revoke_key(
        self, request: Request[Any, Any, Any], org_id: FromPath[str], key_id: FromPath[str]
    ) -> Redirect:
        await checked_form(request)
        request.state.audit_resource_id = key_id
        await tenancy.revoke_key(context_of(request).store, org_id, key_id)
        return Redirect(f"/console/orgs/{org_id}", status_code=303)

    @get("/health", opt=_READ)
    async def health(self, request: Request[Any, Any, Any]) -> Template:
        found = await gateway_health.check_gateway(context_of(request))
        return page(request, "health.html", health=found)
