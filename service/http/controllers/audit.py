"""The org's audit trail: `GET /v1/audit` (cursor pages) and `/v1/audit/export` (JSONL)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import QueryParameter
from litestar.response import Stream

from service.domain.tenancy.access import Capability
from service.errors import InvalidRequest
from service.http.auth import context_of, principal_of, require_org_key
from service.http.schemas.common import AuditList, AuditRecord
from service.ids import is_stream_id
from service.operations.tenancy.audit import export_audit, list_audit
from service.store.tenancy.audit import AuditFilter

Since = Annotated[float | None, QueryParameter(description="Unix time, inclusive.", ge=0)]
Until = Annotated[float | None, QueryParameter(description="Unix time, inclusive.", ge=0)]
Action = Annotated[
    str | None, QueryParameter(description="Action, or an action prefix like 'keys'.")
]
KeyId = Annotated[str | None, QueryParameter(description="Only calls made with this key id.")]
Cursor = Annotated[
    str | None,
    QueryParameter(
        description="The `next_cursor` of the previous page.", pattern=r"^\d{1,20}-\d{1,20}$"
    ),
]


class AuditController(Controller):
    path = "/v1/audit"
    guards = [require_org_key]
    tags = ["audit"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.AUDIT}

    @get("/", operation_id="audit.list")
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        since: Since = None,
        until: Until = None,
        action: Action = None,
        key_id: KeyId = None,
        cursor: Cursor = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> AuditList:
        org_id = principal_of(request).org_id or ""
        if cursor is not None and not is_stream_id(cursor):
            raise InvalidRequest("'cursor' is not a cursor this API returned.", param="cursor")
        filters = AuditFilter(since=since, until=until, action=action, key_id=key_id)
        page = await list_audit(
            context_of(request).store, org_id, filters, cursor=cursor, limit=limit
        )
        return AuditList(
            data=[AuditRecord.model_validate(event.model_dump()) for event in page.events],
            has_more=page.next_cursor is not None,
            next_cursor=page.next_cursor,
        )

    @get("/export", operation_id="audit.export", media_type="application/x-ndjson")
    async def export_events(
        self,
        request: Request[Any, Any, Any],
        since: Since = None,
        until: Until = None,
        action: Action = None,
        key_id: KeyId = None,
    ) -> Stream:
        org_id = principal_of(request).org_id or ""
        filters = AuditFilter(since=since, until=until, action=action, key_id=key_id)
        lines = export_audit(context_of(request).store, org_id, filters)
        return Stream(lines, media_type="application/x-ndjson")
