"""The console's usage (charts and a table by day, model or key over a chosen range, with a CSV
export) and audit (filters, cursor pages,
JSONL export) pages, over the same operations as `GET /v1/usage` and `GET /v1/audit`."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import QueryParameter
from litestar.response import Stream, Template

from service.domain.tenancy.access import Capability
from service.errors import InvalidRequest
from service.http.auth import context_of, principal_of
from service.http.console.charts import MEASURES, usage_charts
from service.http.console.session import EXCEPTION_HANDLERS, page, require_session
from service.ids import is_stream_id
from service.operations.inference.usage import UsageTotal, date_range, usage_report
from service.operations.tenancy.audit import export_audit, list_audit
from service.store.tenancy.audit import AuditFilter

GROUPS = ("day", "model", "key")
COLUMNS = (
    "day",
    "model",
    "key_id",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "trained_tokens",
    "cost",
)
RANGES = (7, 30, 90)
Text = Annotated[str | None, QueryParameter()]
Days = Annotated[int | None, QueryParameter(ge=1, le=366)]
_USAGE = {"org": True, "capability": Capability.USAGE, "audit": "never"}
_AUDIT = {"org": True, "capability": Capability.AUDIT, "audit": "never"}


def _group(group: str | None) -> str:
    if group not in GROUPS:
        return "day"
    return group


def _days(days: int | None) -> list[str]:
    """The last `days` UTC days, today included (30 unless asked)."""
    count = days or 30
    today = dt.datetime.now(dt.UTC).date()
    return date_range(today - dt.timedelta(days=count - 1), today)


async def _usage(request: Request[Any, Any, Any], group: str, days: list[str]) -> list[UsageTotal]:
    org_id = principal_of(request).org_id or ""
    return await usage_report(context_of(request), org_id, days, [group])


def _row(total: UsageTotal) -> dict[str, Any]:
    return {column: getattr(total, column) for column in COLUMNS}


def _filters(since: str | None, until: str | None, action: str | None) -> AuditFilter:
    def stamp(value: str | None, end: bool) -> float | None:
        if not value:
            return None
        try:
            day = dt.datetime.combine(dt.date.fromisoformat(value), dt.time(), tzinfo=dt.UTC)
        except ValueError:
            raise InvalidRequest(f"'{value}' is not a date (YYYY-MM-DD).", param="since") from None
        return day.timestamp() + (86_399.999 if end else 0)

    return AuditFilter(since=stamp(since, False), until=stamp(until, True), action=action or None)


class ReportPages(Controller):
    path = "/console"
    include_in_schema = False
    guards = [require_session]
    exception_handlers = EXCEPTION_HANDLERS

    @get("/usage", opt=_USAGE)
    async def usage(
        self,
        request: Request[Any, Any, Any],
        group: Text = None,
        days: Days = None,
        measure: Text = None,
    ) -> Template:
        span, shown = _days(days), measure if measure in MEASURES else "cost"
        grouped = {name: await _usage(request, name, span) for name in GROUPS}
        rows = [_row(total) for total in grouped[_group(group)]]
        top = max((row["cost"] for row in rows), default=0) or 1
        charts = usage_charts(span, grouped, MEASURES[shown])
        query = {"group": _group(group), "days": len(span), "measure": shown}
        context = {"rows": rows, "groups": GROUPS, "top": top, "charts": charts, "query": query}
        return page(request, "usage.html", ranges=RANGES, **context)

    @get("/usage.csv", opt=_USAGE)
    async def usage_csv(
        self, request: Request[Any, Any, Any], group: Text = None, days: Days = None
    ) -> Response[str]:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(_row(t) for t in await _usage(request, _group(group), _days(days)))
        headers = {"content-disposition": 'attachment; filename="usage.csv"'}
        return Response(out.getvalue(), media_type="text/csv", headers=headers)

    @get("/audit", opt=_AUDIT)
    async def audit(
        self,
        request: Request[Any, Any, Any],
        since: Text = None,
        until: Text = None,
        action: Text = None,
        cursor: Text = None,
    ) -> Template:
        if cursor is not None and not is_stream_id(cursor):
            raise InvalidRequest("'cursor' is not a cursor this page gave.", param="cursor")
        filters = _filters(since, until, action)
        org_id = principal_of(request).org_id or ""
        found = await list_audit(
            context_of(request).store, org_id, filters, cursor=cursor, limit=50
        )
        query = {"since": since or "", "until": until or "", "action": action or ""}
        return page(
            request, "audit.html", events=found.events, next_cursor=found.next_cursor, query=query
        )

    @get("/audit/export", opt=_AUDIT)
    async def audit_export(
        self,
        request: Request[Any, Any, Any],
        since: Text = None,
        until: Text = None,
        action: Text = None,
    ) -> Stream:
        org_id = principal_of(request).org_id or ""
        lines = export_audit(context_of(request).store, org_id, _filters(since, until, action))
        headers = {"content-disposition": 'attachment; filename="audit.jsonl"'}
        return Stream(lines, media_type="application/x-ndjson", headers=headers)
