"""What an org's budgets allow and what is spent of them this period: `GET /v1/budget`, the
operator's view of every org, and the spending `GET /v1/usage` shows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from service.domain.budgets.limits import NANOS, Period, Scope, period_of, report_scopes
from service.operations.context import Context
from service.operations.tenancy.orgs import get_org
from service.store.budgets import ScopeSpend
from service.store.tenancy.orgs import OrgRecord


@dataclass(frozen=True, slots=True)
class ScopeReport:
    scope: str
    limit_nanos: int | None
    spent_nanos: int
    reserved_nanos: int  # by calls and jobs, leases apart
    leased_nanos: int = 0  # held by gateway processes for a busy key's calls

    @property
    def remaining_nanos(self) -> int | None:
        if self.limit_nanos is None:
            return None
        held = self.spent_nanos + self.reserved_nanos + self.leased_nanos
        return max(self.limit_nanos - held, 0)


@dataclass(frozen=True, slots=True)
class BudgetReport:
    org_id: str
    period: Period | None  # None: the org has no budgets
    scopes: list[ScopeReport]


def _scope_report(scope: Scope, spending: dict[str, ScopeSpend]) -> ScopeReport:
    found = spending.get(scope.name, ScopeSpend(0, 0))
    calls = max(found.reserved - found.leased, 0)
    return ScopeReport(scope.name, scope.limit_nanos, found.spent, calls, found.leased)


async def report_of(ctx: Context, org: OrgRecord) -> BudgetReport:
    budgets = org.policy.budgets
    if budgets is None:
        return BudgetReport(org.id, None, [])
    period = period_of(budgets, dt.datetime.now(dt.UTC))
    spending = await ctx.store.budgets.spending(org.id, period.name)
    scopes = report_scopes(budgets)
    named = {scope.name for scope in scopes}
    scopes += [Scope(name, None) for name in sorted(spending) if name not in named]
    return BudgetReport(org.id, period, [_scope_report(scope, spending) for scope in scopes])


async def budget_report(ctx: Context, org_id: str) -> BudgetReport:
    """The org's budgets this period (an unknown org is a 404)."""
    return await report_of(ctx, await get_org(ctx.store, org_id))


async def all_budget_reports(ctx: Context) -> list[BudgetReport]:
    """Every org's, for the operator."""
    return [await report_of(ctx, org) for org in await ctx.store.tenancy.list_orgs()]


async def budget_summary(ctx: Context, org_id: str) -> tuple[float | None, float | None]:
    """The org scope's spent and remaining USD this period, for the usage report."""
    report = await budget_report(ctx, org_id)
    org = next((scope for scope in report.scopes if scope.scope == "org"), None)
    if org is None:
        return None, None
    remaining = org.remaining_nanos
    return org.spent_nanos / NANOS, None if remaining is None else remaining / NANOS
