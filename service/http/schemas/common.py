"""Request and response models of tunegate's own endpoints: the public contract.

OpenAI-shaped endpoints keep OpenAI's field names; operator endpoints follow DESIGN.md.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from service.domain.tenancy.access import Role
from service.domain.tenancy.policy import Policy
from service.operations.evals.gate import Gate

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListResponse(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool = False


class PromoteRequirement(Strict):
    """Evidence the new model must show over the alias's current one on an eval: the same gate
    for `PUT /v1/aliases/{name}` and `POST /v1/sweeps/{id}/promote`."""

    eval_id: str
    min_improvement: float = Field(default=0.0, ge=-1, le=1)
    confidence: float = Field(default=0.95, ge=0.5, le=0.999)

    def gate(self) -> Gate:
        return Gate(**self.model_dump())


class OrgCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    policy: Policy | None = None


class Org(BaseModel):
    id: str
    name: str
    policy: Policy
    created_at: int


class KeyCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    role: Role


class Key(BaseModel):
    id: str
    name: str
    role: Role
    created_at: int
    revoked_at: int | None = None


class KeyList(BaseModel):
    """A page of the org's keys, newest first (never their secrets)."""

    object: Literal["list"] = "list"
    data: list[Key]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class KeyCreated(BaseModel):
    id: str
    key: str = Field(description="The key itself: shown only in this response.")
    name: str
    role: Role
    created_at: int


class AuditRecord(BaseModel):
    id: str
    time: float
    org_id: str | None
    key_id: str | None
    role: str | None
    action: str
    resource_id: str | None
    request_id: str | None
    outcome: str
    status: int | None
    client: str | None
    details: dict[str, Any]


class AuditList(BaseModel):
    object: Literal["list"] = "list"
    data: list[AuditRecord]
    has_more: bool
    next_cursor: str | None = None


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    redis: bool
    workers: int


class Index(BaseModel):
    """What `/` answers: this service, and where to go next."""

    name: Literal["tunegate"] = "tunegate"
    version: str
    links: dict[str, str] = Field(
        description="`docs`: the OpenAPI UI; `openapi`: its document; `api`: the OpenAI-shaped "
        "API base URL; `health`: liveness."
    )


class FileObject(BaseModel):
    """OpenAI's file object; `id` is tunegate's."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str
    status_details: str | None = None
    expires_at: int | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None

    @classmethod
    def page(cls, items: list[FileObject], after: str | None, limit: int, order: str) -> FileList:
        """Items arrive newest first; OpenAI pages with an `after` cursor (an object id)."""
        ordered = items if order == "desc" else list(reversed(items))
        if after is not None:
            ids = [item.id for item in ordered]
            ordered = ordered[ids.index(after) + 1 :] if after in ids else []
        page = ordered[:limit]
        return cls(
            data=page,
            has_more=len(ordered) > limit,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
        )
