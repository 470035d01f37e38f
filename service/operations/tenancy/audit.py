"""The one function that writes an audit record, used by the HTTP layer and the workers alike."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from service.domain.tenancy.access import Principal
from service.domain.tenancy.audit import AuditEvent, Outcome
from service.store import Store
from service.store.tenancy.audit import AuditFilter, AuditPage


def audit_event(
    *,
    principal: Principal | None,
    action: str,
    outcome: Outcome,
    org_id: str | None = None,
    resource_id: str | None = None,
    request_id: str | None = None,
    status: int | None = None,
    client: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        time=time.time(),
        org_id=org_id or (principal.org_id if principal else None),
        key_id=principal.key_id if principal else None,
        role=principal.role if principal else None,
        action=action,
        resource_id=resource_id,
        request_id=request_id,
        outcome=outcome,
        status=status,
        client=client,
        details=details or {},
    )


async def record_audit(store: Store, **fields: Any) -> AuditEvent:
    """Write one audit record (the fields of `audit_event`)."""
    event = audit_event(**fields)
    event.id = await store.audit.append(event)
    return event


async def record_audits(store: Store, events: list[AuditEvent]) -> None:
    """Write many audit records in one round trip (the completion proxy's batches)."""
    for event, event_id in zip(events, await store.audit.append_many(events), strict=True):
        event.id = event_id


async def list_audit(
    store: Store, org_id: str, filters: AuditFilter, *, cursor: str | None, limit: int
) -> AuditPage:
    return await store.audit.page(org_id, filters, cursor=cursor, limit=limit)


async def export_audit(store: Store, org_id: str, filters: AuditFilter) -> AsyncIterator[bytes]:
    """The org's matching records as JSONL, oldest first, one line at a time."""
    async for event in store.audit.export(org_id, filters):
        yield event.model_dump_json().encode() + b"\n"
