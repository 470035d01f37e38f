"""The org admin's keys page: the org's keys, a new one shown once on the answer to its form (never
in a URL, a cookie or browser storage; every console page is `no-store`), and revoking one after a
confirm step that warns when it is the key this session signed in with. The same operations and
the same `KeyCreate` model as `/v1/keys`."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template
from pydantic import ValidationError

from service.domain.tenancy.access import ROLES, Capability
from service.errors import InvalidRequest
from service.http.auth import context_of, principal_of
from service.http.console.session import (
    EXCEPTION_HANDLERS,
    PageNo,
    checked_form,
    page,
    paged,
    require_session,
)
from service.http.path_ids import require_wellformed_ids
from service.http.schemas.common import KeyCreate
from service.operations.tenancy import orgs as tenancy

_KEYS = {"org": True, "capability": Capability.KEYS}
_READ = {**_KEYS, "audit": "never"}


def _key_create(form: dict[str, str]) -> KeyCreate:
    try:
        return KeyCreate(name=form.get("name", "").strip(), role=form.get("role", ""))  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else None
        raise InvalidRequest(f"The key's {param}: {first['msg']}.", param=param) from None


async def _keys_page(
    request: Request[Any, Any, Any], page_no: int | None = None, **extra: Any
) -> Template:
    principal = principal_of(request)
    found = await tenancy.list_keys(context_of(request).store, principal.org_id or "")
    listed = paged(list(reversed(found)), page_no)
    context = {"roles": ROLES, "own_key_id": principal.key_id, "new_key": None}
    return page(request, "keys.html", **{**context, **listed, **extra})


class KeyPages(Controller):
    path = "/console/keys"
    include_in_schema = False
    guards = [require_session, require_wellformed_ids]
    exception_handlers = EXCEPTION_HANDLERS

    @get("/", opt=_READ)
    async def keys(self, request: Request[Any, Any, Any], page_no: PageNo = None) -> Template:
        return await _keys_page(request, page_no)

    @post("/", operation_id="console.keys.org.create", opt=_KEYS, status_code=200)
    async def create_key(self, request: Request[Any, Any, Any]) -> Template:
        wanted = _key_create(await checked_form(request))
        org_id = principal_of(request).org_id or ""
        store = context_of(request).store
        record, issued = await tenancy.create_key(store, org_id, wanted.name, wanted.role)
        request.state.audit_resource_id = record.id
        request.state.audit_details = {"name": record.name, "role": record.role}
        return await _keys_page(request, new_key=issued.plaintext, new_key_id=record.id)

    @get("/{key_id:str}/revoke", opt=_READ)
    async def confirm_revoke(
        self, request: Request[Any, Any, Any], key_id: FromPath[str]
    ) -> Template:
        principal = principal_of(request)
        record = await tenancy.get_key(context_of(request).store, principal.org_id or "", key_id)
        own = record.id == principal.key_id
        return page(request, "key_revoke.html", key=record, own=own)

    @post(
        "/{key_id:str}/revoke", operation_id="console.keys.org.revoke", opt=_KEYS, status_code=303
    )
    async def revoke_key(self, request: Request[Any, Any, Any], key_id: FromPath[str]) -> Redirect:
        await checked_form(request)
        request.state.audit_resource_id = key_id
        org_id = principal_of(request).org_id or ""
        await tenancy.revoke_key(context_of(request).store, org_id, key_id)
        return Redirect("/console/keys", status_code=303)
