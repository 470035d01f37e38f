"""The org's own keys: `/v1/keys`, for its admins. The same operations as the operator's
`/admin/orgs/{org_id}/keys`, on the caller's org. An admin may revoke the key it calls with:
the revocation holds at once, so that key's next call is a 401."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of, require_org_key
from service.http.controllers.admin import key_created, key_object
from service.http.path_ids import require_wellformed_ids
from service.http.schemas.common import Key, KeyCreate, KeyCreated, KeyList
from service.operations.tenancy import orgs as tenancy

After = Annotated[str | None, QueryParameter(description="The id of the last key seen.")]
Limit = Annotated[int, QueryParameter(ge=1, le=100)]


def org_of(request: Request[Any, Any, Any]) -> str:
    return principal_of(request).org_id or ""


class KeysController(Controller):
    path = "/v1/keys"
    guards = [require_org_key, require_wellformed_ids]
    tags = ["keys"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.KEYS}

    @get("/", operation_id="keys.org.list", summary="List the org's keys (admins)")
    async def list_keys(
        self, request: Request[Any, Any, Any], after: After = None, limit: Limit = 20
    ) -> KeyList:
        store = context_of(request).store
        records, more = await tenancy.page_keys(store, org_of(request), after=after, limit=limit)
        found = [key_object(record) for record in records]
        first, last = (found[0].id, found[-1].id) if found else (None, None)
        return KeyList(data=found, has_more=more, first_id=first, last_id=last)

    @post(
        "/",
        operation_id="keys.org.create",
        status_code=201,
        summary="Create a key of the org (admins); the key is shown only in this answer",
    )
    async def create_key(
        self, request: Request[Any, Any, Any], data: JSONBody[KeyCreate]
    ) -> KeyCreated:
        store = context_of(request).store
        record, issued = await tenancy.create_key(store, org_of(request), data.name, data.role)
        request.state.audit_resource_id = record.id
        request.state.audit_details = {"name": record.name, "role": record.role}
        return key_created(record, issued.plaintext)

    @delete(
        "/{key_id:str}",
        operation_id="keys.org.revoke",
        status_code=200,
        summary="Revoke a key of the org at once (admins)",
        description="The key calling may revoke itself: its next call is a 401.",
    )
    async def revoke_key(self, request: Request[Any, Any, Any], key_id: FromPath[str]) -> Key:
        request.state.audit_resource_id = key_id
        store = context_of(request).store
        return key_object(await tenancy.revoke_key(store, org_of(request), key_id))
