"""The audit record: who did what to which resource, with what outcome.

Records are append-only. They never hold a key, only its id; prompt content appears only as the
org's `log_content` policy allows.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Outcome = Literal["success", "denied", "rejected", "error"]


class AuditEvent(BaseModel):
    id: str = ""
    time: float
    org_id: str | None
    key_id: str | None
    role: str | None
    action: str
    resource_id: str | None = None
    request_id: str | None = None
    outcome: Outcome
    status: int | None = None
    client: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


def outcome_for_status(status: int) -> Outcome:
    if status in (401, 403, 404, 429):
        return "denied"
    if status >= 500:
        return "error"
    return "rejected" if status >= 400 else "success"
