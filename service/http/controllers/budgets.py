"""Budgets: `GET /v1/budget` (the caller's org) and, for the operator, `GET /admin/budgets`
(every org) and `GET /admin/orgs/{org_id}/budget`. Limits are changed in the policy."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, get
from litestar.params import FromPath
from pydantic import BaseModel, Field

from service.domain.budgets.limits import NANOS
from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of, require_operator, require_org_key
from service.http.path_ids import require_wellformed_ids
from service.http.schemas.common import ListResponse
from service.operations.budgets.reports import (
    BudgetReport,
    ScopeReport,
    all_budget_reports,
    budget_report,
)


class BudgetScope(BaseModel):
    scope: str = Field(description="`org`, `kind:inference`, `kind:training` or `key:<key id>`.")
    limit_usd: float | None = Field(description="null: counted, not limited.")
    spent_usd: float = Field(description="Settled spending this period.")
    reserved_usd: float = Field(description="Worst cases of calls and jobs still running.")
    leased_usd: float = Field(
        description="Held by gateway processes for a busy key's next calls (those running "
        "included); given back after a couple of idle seconds, or at once when a call needs it."
    )
    remaining_usd: float | None


class Budget(BaseModel):
    object: Literal["budget"] = "budget"
    org_id: str
    period_start: str | None = Field(description="null: the org has no budgets.")
    resets_at: str | None = Field(description="When the next period starts (UTC).")
    currency: str
    scopes: list[BudgetScope]


def _usd(nanos: int | None) -> float | None:
    return None if nanos is None else nanos / NANOS


def _scope(report: ScopeReport) -> BudgetScope:
    return BudgetScope(
        scope=report.scope,
        limit_usd=_usd(report.limit_nanos),
        spent_usd=report.spent_nanos / NANOS,
        reserved_usd=report.reserved_nanos / NANOS,
        leased_usd=report.leased_nanos / NANOS,
        remaining_usd=_usd(report.remaining_nanos),
    )


def budget_of(report: BudgetReport, currency: str) -> Budget:
    period = report.period
    return Budget(
        org_id=report.org_id,
        period_start=period.start.isoformat() if period else None,
        resets_at=period.end.isoformat() if period else None,
        currency=currency,
        scopes=[_scope(scope) for scope in report.scopes],
    )


class BudgetController(Controller):
    path = "/v1/budget"
    guards = [require_org_key]
    tags = ["usage"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.USAGE}

    @get("/", operation_id="budget.retrieve")
    async def get_budget(self, request: Request[Any, Any, Any]) -> Budget:
        ctx = context_of(request)
        report = await budget_report(ctx, principal_of(request).org_id or "")
        return budget_of(report, ctx.prices.currency)


class AdminBudgetsController(Controller):
    path = "/admin"
    guards = [require_operator, require_wellformed_ids]
    tags = ["operator"]
    security = [{"AdminToken": []}]

    @get("/budgets", operation_id="budgets.list")
    async def list_budgets(self, request: Request[Any, Any, Any]) -> ListResponse[Budget]:
        ctx = context_of(request)
        reports = await all_budget_reports(ctx)
        return ListResponse[Budget](data=[budget_of(r, ctx.prices.currency) for r in reports])

    @get("/orgs/{org_id:str}/budget", operation_id="orgs.budget.retrieve")
    async def get_org_budget(
        self, request: Request[Any, Any, Any], org_id: FromPath[str]
    ) -> Budget:
        ctx = context_of(request)
        return budget_of(await budget_report(ctx, org_id), ctx.prices.currency)
