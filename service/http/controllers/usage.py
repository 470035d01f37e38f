"""Usage: `GET /v1/usage` — tokens, requests and estimated cost of the org's proxied calls and
fine-tuning jobs."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.params import QueryParameter
from pydantic import BaseModel, Field

from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of, require_org_key
from service.operations.budgets.reports import budget_summary
from service.operations.inference.usage import UsageTotal, date_range, usage_report

GroupBy = Annotated[
    list[str] | None,
    QueryParameter(
        description=(
            "Any of model, key, day, endpoint (the proxied API: chat, completions, responses, "
            "embeddings, moderations): repeat the parameter or separate with commas."
        )
    ),
]
Day = Annotated[dt.date | None, QueryParameter(description="YYYY-MM-DD (UTC), inclusive.")]


class UsageRow(BaseModel):
    day: str | None = None
    model: str | None = None
    key_id: str | None = None
    endpoint: str | None = Field(
        default=None,
        description=(
            "The proxied API, when grouped by endpoint (null for fine-tuning's trained tokens "
            "and calls counted before endpoints were)."
        ),
    )
    prompt_tokens: int = Field(description="Input tokens (the Responses API's input_tokens).")
    completion_tokens: int = Field(description="Output tokens (reasoning tokens included).")
    cached_tokens: int = Field(default=0, description="Of prompt_tokens, those served cached.")
    reasoning_tokens: int = Field(default=0, description="Of completion_tokens, reasoning.")
    total_tokens: int = Field(description="prompt_tokens plus completion_tokens.")
    trained_tokens: int = Field(description="Tokens trained on by the org's fine-tuning jobs.")
    requests: int
    cost: float


class UsageReport(BaseModel):
    object: Literal["list"] = "list"
    data: list[UsageRow]
    start_date: str
    end_date: str
    currency: str
    budget_spent: float | None = Field(
        default=None, description="Spent this budget period (null: the org has no budgets)."
    )
    budget_remaining: float | None = Field(
        default=None, description="Left of the org's monthly limit this period (null: none)."
    )


def usage_row(total: UsageTotal) -> UsageRow:
    return UsageRow(
        day=total.day,
        model=total.model,
        key_id=total.key_id,
        endpoint=total.endpoint,
        prompt_tokens=total.prompt_tokens,
        completion_tokens=total.completion_tokens,
        cached_tokens=total.cached_tokens,
        reasoning_tokens=total.reasoning_tokens,
        total_tokens=total.prompt_tokens + total.completion_tokens,
        trained_tokens=total.trained_tokens,
        requests=total.requests,
        cost=total.cost,
    )


class UsageController(Controller):
    path = "/v1/usage"
    guards = [require_org_key]
    tags = ["usage"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.USAGE}

    @get("/", operation_id="usage.retrieve")
    async def get_usage(
        self,
        request: Request[Any, Any, Any],
        start_date: Day = None,
        end_date: Day = None,
        group_by: GroupBy = None,
    ) -> UsageReport:
        ctx, days = context_of(request), date_range(start_date, end_date)
        totals = await usage_report(ctx, principal_of(request).org_id or "", days, group_by or [])
        rows = [usage_row(total) for total in totals]
        spent, remaining = await budget_summary(ctx, principal_of(request).org_id or "")
        return UsageReport(
            data=rows,
            start_date=days[0],
            end_date=days[-1],
            currency=ctx.prices.currency,
            budget_spent=spent,
            budget_remaining=remaining,
        )
