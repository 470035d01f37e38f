"""Operator API: orgs, policies and keys (`Authorization: Bearer $TUNEGATE_ADMIN_TOKEN`)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.exceptions import HTTPException
from litestar.params import Body, FromPath, JSONBody

from service.domain.tenancy.policy import Policy
from service.http.auth import context_of, require_operator
from service.http.path_ids import require_wellformed_ids
from service.http.schemas.common import Key, KeyCreate, KeyCreated, ListResponse, Org, OrgCreate
from service.http.schemas.jobs import WebhookSecret
from service.operations.tenancy import orgs as tenancy
from service.operations.webhooks import events as webhooks
from service.store.tenancy.orgs import KeyRecord, OrgRecord


def _org(record: OrgRecord) -> Org:
    return Org(id=record.id, name=record.name, policy=record.policy, created_at=record.created_at)


def key_object(record: KeyRecord) -> Key:
    return Key.model_validate(record.model_dump())


def key_created(record: KeyRecord, plaintext: str) -> KeyCreated:
    """The one answer that carries the key itself."""
    return KeyCreated(
        id=record.id,
        key=plaintext,
        name=record.name,
        role=record.role,
        created_at=record.created_at,
    )


MergePatch = Annotated[
    dict[str, Any],
    Body(
        media_type="application/merge-patch+json",
        description=(
            "A JSON merge patch (RFC 7396) of the policy: fields given replace theirs, objects "
            "merge, null resets a field to its default. `application/json` is accepted too."
        ),
    ),
]
PATCH_TYPES = frozenset({"application/merge-patch+json", "application/json"})


def _require_merge_patch(request: Request[Any, Any, Any]) -> None:
    if request.content_type[0] not in PATCH_TYPES:
        raise HTTPException(
            status_code=415,
            detail="Send the patch as application/merge-patch+json (or application/json).",
        )


class AdminController(Controller):
    path = "/admin/orgs"
    guards = [require_operator, require_wellformed_ids]
    tags = ["operator"]
    security = [{"AdminToken": []}]

    @post("/", operation_id="orgs.create", status_code=201)
    async def create_org(self, request: Request[Any, Any, Any], data: JSONBody[OrgCreate]) -> Org:
        ctx = context_of(request)
        org = await tenancy.create_org(
            ctx.store, data.name, data.policy, networks=ctx.settings.webhook_networks
        )
        request.state.audit_org_id = request.state.audit_resource_id = org.id
        return _org(org)

    @get("/", operation_id="orgs.list")
    async def list_orgs(self, request: Request[Any, Any, Any]) -> ListResponse[Org]:
        orgs = await context_of(request).store.tenancy.list_orgs()
        return ListResponse[Org](data=[_org(org) for org in orgs])

    @get("/{org_id:str}", operation_id="orgs.retrieve")
    async def get_org(self, request: Request[Any, Any, Any], org_id: FromPath[str]) -> Org:
        return _org(await tenancy.get_org(context_of(request).store, org_id))

    @put("/{org_id:str}/policy", operation_id="orgs.policy.replace")
    async def replace_policy(
        self, request: Request[Any, Any, Any], org_id: FromPath[str], data: JSONBody[Policy]
    ) -> Org:
        request.state.audit_resource_id = org_id
        request.state.audit_details = {"policy": data.model_dump(mode="json")}
        ctx = context_of(request)
        networks = ctx.settings.webhook_networks
        return _org(await tenancy.replace_policy(ctx.store, org_id, data, networks=networks))

    @get("/{org_id:str}/policy", operation_id="orgs.policy.retrieve")
    async def get_policy(self, request: Request[Any, Any, Any], org_id: FromPath[str]) -> Policy:
        request.state.audit_resource_id = org_id
        return (await tenancy.get_org(context_of(request).store, org_id)).policy

    @patch("/{org_id:str}/policy", operation_id="orgs.policy.update")
    async def update_policy(
        self, request: Request[Any, Any, Any], org_id: FromPath[str], data: MergePatch
    ) -> Org:
        _require_merge_patch(request)
        request.state.audit_resource_id = org_id
        request.state.audit_details = {"patch": data}
        ctx = context_of(request)
        networks = ctx.settings.webhook_networks
        org = await tenancy.patch_policy(ctx.store, org_id, data, networks=networks)
        request.state.audit_details["policy"] = org.policy.model_dump(mode="json")
        return _org(org)

    @post("/{org_id:str}/keys", operation_id="keys.create", status_code=201)
    async def create_key(
        self, request: Request[Any, Any, Any], org_id: FromPath[str], data: JSONBody[KeyCreate]
    ) -> KeyCreated:
        record, issued = await tenancy.create_key(
            context_of(request).store, org_id, data.name, data.role
        )
        request.state.audit_resource_id = record.id
        request.state.audit_details = {"name": record.name, "role": record.role}
        return key_created(record, issued.plaintext)

    @get("/{org_id:str}/keys", operation_id="keys.list")
    async def list_keys(
        self, request: Request[Any, Any, Any], org_id: FromPath[str]
    ) -> ListResponse[Key]:
        records = await tenancy.list_keys(context_of(request).store, org_id)
        return ListResponse[Key](data=[key_object(record) for record in records])

    @delete("/{org_id:str}/keys/{key_id:str}", operation_id="keys.revoke", status_code=200)
    async def revoke_key(
        self, request: Request[Any, Any, Any], org_id: FromPath[str], key_id: FromPath[str]
    ) -> Key:
        request.state.audit_resource_id = key_id
        return key_object(await tenancy.revoke_key(context_of(request).store, org_id, key_id))

    @post(
        "/{org_id:str}/webhook-secret", operation_id="orgs.webhook_secret.rotate", status_code=200
    )
    async def rotate_webhook_secret(
        self, request: Request[Any, Any, Any], org_id: FromPath[str]
    ) -> WebhookSecret:
        request.state.audit_resource_id = org_id
        secret = await webhooks.rotate_webhook_secret(context_of(request).store, org_id)
        return WebhookSecret(secret=secret)
