"""What each proxied call used and cost, and the org's usage report.

`record_call` is where a finished (or refused) call leaves its traces: usage counters per org,
key, model and UTC day, with the estimated cost from the price table (tuned models at their
tuned rates); the rate-limit correction (the tokens reserved before the call against what the
upstream reported); the budget settlements (its reservations replaced by what it cost, in the
same round trip as the counters, then the alerts they crossed); and the call's audit record.
Calls that finish together are written together (`CallRecorder`). Fine-tuning jobs count
their training tokens apart, as `trained_tokens` under `fine-tuning:<base model>` (see
`jobs.finish`). `usage_report` sums the counters over a date range, grouped as asked (by model,
key, day and the proxied endpoint).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from service.domain.inference.output import Usage
from service.domain.pricing import UnknownModelError, inference_cost
from service.domain.tenancy.access import Principal
from service.domain.tenancy.audit import AuditEvent, Outcome, outcome_for_status
from service.errors import InvalidRequest
from service.operations.budgets.charges import Reservation, send_alerts, settlement_of
from service.operations.context import Context
from service.operations.tenancy.audit import audit_event, record_audits
from service.store.budgets import Settlement
from service.store.inference.usage import TokenCorrection, UsageEntry, UsageRow

GROUPS = ("model", "key", "day", "endpoint")
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_DAYS = 30
NANOS = 1_000_000_000
MAX_BATCH = 256
DISCONNECTED = 499  # nginx's "client closed request": a client that left mid-stream


@dataclass(frozen=True, slots=True)
class Metered:
    """One finished or refused call, as the usage counters and the audit trail see it."""

    principal: Principal | None
    org_id: str | None
    action: str
    model: str | None
    usage: Usage | None
    reserved_tokens: int
    tokens_per_minute: int | None
    request_id: str | None
    client: str | None
    status: int
    details: dict[str, Any]
    endpoint: str = ""  # the proxied API (`chat`, `responses`, ...)
    # budget reservations to settle, each with what it really cost (0: released)
    settlements: tuple[tuple[Reservation, int], ...] = ()

    @property
    def outcome(self) -> Outcome:
        return "error" if self.status == DISCONNECTED else outcome_for_status(self.status)


def cost_nanos(ctx: Context, model: str, usage: Usage) -> int:
    try:
        cost = inference_cost(
            model, usage.prompt_tokens, usage.completion_tokens, ctx.prices, usage.cached_tokens
        )
    except UnknownModelError:
        return 0
    return round(cost * NANOS)


def _correction(metered: Metered) -> TokenCorrection | None:
    principal = metered.principal
    if not metered.tokens_per_minute or principal is None or principal.key_id is None:
        return None
    used = metered.usage.total_tokens if metered.usage is not None else 0
    if metered.reserved_tokens == used:
        return None
    delta = metered.reserved_tokens - used
    return TokenCorrection(principal.key_id, metered.tokens_per_minute, delta)


def _entry(ctx: Context, metered: Metered, day: str) -> UsageEntry | None:
    principal, usage = metered.principal, metered.usage
    if usage is None or metered.model is None or principal is None:
        return None
    return UsageEntry(
        org_id=principal.org_id or "",
        key_id=principal.key_id or "",
        model=metered.model,
        day=day,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_nanos=cost_nanos(ctx, metered.model, usage),
        endpoint=metered.endpoint,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )


def _audit_event(metered: Metered) -> AuditEvent:
    return audit_event(
        principal=metered.principal,
        action=metered.action,
        outcome=metered.outcome,
        org_id=metered.org_id,
        resource_id=metered.model,
        request_id=metered.request_id,
        status=metered.status,
        client=metered.client,
        details=metered.details,
    )


async def write_calls(ctx: Context, batch: list[Metered]) -> None:
    """Usage, rate-limit corrections and budget settlements of the batch in one pipeline, then
    its audit records in another: two round trips however many calls the batch holds."""
    day = dt.datetime.now(dt.UTC).date().isoformat()
    entries = [entry for metered in batch if (entry := _entry(ctx, metered, day))]
    corrections = [fix for metered in batch if (fix := _correction(metered))]
    held, settlements = _settlements(ctx, batch)
    failure: Exception | None = None
    alerts: list[list[tuple[str, float]]] = []
    try:
        alerts = await ctx.store.usage.record(entries, corrections, settlements)
    except Exception as error:  # the audit records still go out
        failure = error
    await record_audits(ctx.store, [_audit_event(metered) for metered in batch])
    for reservation, claimed in zip(held, alerts, strict=False):
        await send_alerts(ctx, reservation, claimed)
    if failure is not None:
        raise failure


def _settlements(ctx: Context, batch: list[Metered]) -> tuple[list[Reservation], list[Settlement]]:
    """The batch's settlements, those of the same lease (or the same scopes) summed into one,
    each with a reservation it settles (for its alerts). One a lease took back in memory whole
    (a call refused after it reserved) needs no Redis at all."""
    grouped: dict[tuple[Any, ...], tuple[Reservation, Settlement]] = {}
    for reservation, spent in (pair for metered in batch for pair in metered.settlements):
        settlement = settlement_of(ctx, reservation, spent)
        if not settlement.reserved and not settlement.spent:
            continue
        group = (
            settlement.org_id,
            settlement.period,
            tuple(settlement.scopes),
            tuple(settlement.thresholds),
            settlement.lease_id,
        )
        if (found := grouped.get(group)) is not None:
            total = found[1]
            reserved, spent = total.reserved + settlement.reserved, total.spent + settlement.spent
            settlement = replace(total, reserved=reserved, spent=spent)
            reservation = found[0]
        grouped[group] = (reservation, settlement)
    return [pair[0] for pair in grouped.values()], [pair[1] for pair in grouped.values()]


class CallRecorder:
    """Group commit for finished calls: the first call to finish starts a writer, calls that
    finish while it writes wait for its next batch. An idle gateway writes each call at once;
    a busy one writes many per round trip, over one Redis connection."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._pending: list[tuple[Metered, asyncio.Future[None]]] = []
        self._writer: asyncio.Future[None] | None = None

    async def record(self, metered: Metered) -> None:
        """Returns once the call's traces are written (raises what the write raised)."""
        written = asyncio.get_running_loop().create_future()
        self._pending.append((metered, written))
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._drain())
        await written

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    await write_calls(self.ctx, [metered for metered, _ in batch])
                except Exception as error:
                    _settle(batch, error)
                else:
                    _settle(batch, None)
        finally:
            self._writer = None


def _settle(batch: list[tuple[Metered, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, written in batch:
        if written.done():
            continue
        if error is None:
            written.set_result(None)
        else:
            written.set_exception(error)


async def record_call(ctx: Context, metered: Metered) -> None:
    recorder = ctx.extras.get("call_recorder")
    if recorder is None:
        recorder = ctx.extras["call_recorder"] = CallRecorder(ctx)
    await recorder.record(metered)


# The report


@dataclass(slots=True)
class UsageTotal:
    day: str | None
    model: str | None
    key_id: str | None
    endpoint: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    trained_tokens: int = 0
    requests: int = 0
    cost_nanos: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def cost(self) -> float:
        return self.cost_nanos / NANOS


def date_range(start: dt.date | None, end: dt.date | None) -> list[str]:
    """The days from start to end inclusive (default: the last 30 days, today included)."""
    end = end or dt.datetime.now(dt.UTC).date()
    start = start or end - dt.timedelta(days=DEFAULT_RANGE_DAYS - 1)
    if start > end:
        raise InvalidRequest("start_date must not be after end_date.", param="start_date")
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise InvalidRequest(
            f"A usage report spans at most {MAX_RANGE_DAYS} days.", param="start_date"
        )
    return [(start + dt.timedelta(days=offset)).isoformat() for offset in range(days)]


def check_groups(group_by: list[str]) -> list[str]:
    groups = [name.strip() for value in group_by for name in value.split(",") if name.strip()]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise InvalidRequest(
            f"Unknown group_by {', '.join(unknown)}: use {', '.join(GROUPS)}.", param="group_by"
        )
    return groups


Group = tuple[str | None, str | None, str | None, str | None]


def _group(row: UsageRow, groups: list[str]) -> Group:
    return (
        row.day if "day" in groups else None,
        row.model if "model" in groups else None,
        row.key_id if "key" in groups else None,
        row.endpoint if "endpoint" in groups else None,
    )


async def usage_report(
    ctx: Context, org_id: str, days: list[str], group_by: list[str]
) -> list[UsageTotal]:
    """Totals over `days` (see `date_range`), one per group; one row when ungrouped."""
    groups = check_groups(group_by)
    totals: dict[Group, UsageTotal] = {}
    if not groups:
        totals[(None, None, None, None)] = UsageTotal(None, None, None)
    for row in await ctx.store.usage.rows(org_id, days):
        group = _group(row, groups)
        total = totals.setdefault(group, UsageTotal(*group))
        total.prompt_tokens += row.prompt_tokens
        total.completion_tokens += row.completion_tokens
        total.trained_tokens += row.trained_tokens
        total.cached_tokens += row.cached_tokens
        total.reasoning_tokens += row.reasoning_tokens
        total.requests += row.requests
        total.cost_nanos += row.cost_nanos
    return [totals[group] for group in sorted(totals, key=lambda g: tuple(v or "" for v in g))]
