"""Reserve before spending, settle after.

`reserve` charges a worst-case cost to every scope of the org's budgets that applies (one Lua
call, so every process shares one exact limit) and raises `QuotaExceeded` when any would go
over; an org without budgets costs nothing here. A proxied call may take it from a lease this
process holds instead (`leases`); when it does not fit while other processes hold leases, they
are recalled and the call tries again before it is refused. `settle` replaces the reservation
with what was really spent (0 releases it) and sends the alerts that crossed a threshold, each
once per period, as `budget.threshold_reached` / `budget.exhausted` callbacks to the org's
`webhook_url`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from dataclasses import asdict, dataclass
from typing import Any

from service.domain.budgets.limits import Kind, Scope
from service.domain.tenancy.policy import Budgets
from service.errors import QuotaExceeded
from service.logging import get_logger
from service.operations.budgets.leases import (
    LEASES,
    RECALL_WAIT_SECONDS,
    LeaseBook,
    Taken,
    plan_for,
)
from service.operations.context import Context
from service.operations.webhooks.events import queue_callback
from service.store.budgets import Refusal, Settlement

log = get_logger("tunegate.budgets")
EXHAUSTED_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. "
    "(tunegate: the {scope} budget of this period has {remaining} USD left, this request may "
    "cost up to {cost} USD; it resets at {reset}.)"
)


@dataclass(frozen=True, slots=True)
class Reservation:
    org_id: str
    period: str
    scopes: list[Scope]
    amount: int
    thresholds: list[float]
    lease_id: str | None = None  # the lease of this process that funds it

    def to_json(self) -> dict[str, Any]:
        """As a job record keeps it until the job ends."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reservation:
        scopes = [Scope(**scope) for scope in data["scopes"]]
        return cls(**{**data, "scopes": scopes})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def reserve(
    ctx: Context,
    org_id: str,
    budgets: Budgets | None,
    key_id: str | None,
    kind: Kind,
    amount: int,
    *,
    lease: bool = False,
) -> Reservation | None:
    """Reserve `amount` nano-dollars, or raise `QuotaExceeded`; None when there are no budgets.
    `lease`: it may come from a lease of this process (a call settled here, with its usage)."""
    if budgets is None:
        return None
    book: LeaseBook | None = ctx.extras.get(LEASES) if lease else None
    now = _now()
    if book is not None:
        plan = book.plan(budgets, org_id, key_id, kind, now)
    else:
        plan = plan_for(budgets, org_id, key_id, kind, now)
    period, scopes, key = plan.period, plan.scopes, plan.key
    if book is not None and (lease_id := book.take(key, amount)) is not None:
        return Reservation(org_id, period.name, scopes, amount, budgets.alert_thresholds, lease_id)
    answer = await _reserve(ctx, book, key, amount)
    if isinstance(answer, Taken):
        thresholds = budgets.alert_thresholds
        return Reservation(org_id, period.name, scopes, amount, thresholds, answer.lease_id)
    limit = next(scope.limit_nanos for scope in scopes if scope.name == answer.scope) or 0
    remaining = max(limit - answer.spent - answer.reserved, 0)
    message = EXHAUSTED_MESSAGE.format(
        scope=answer.scope,
        remaining=f"{remaining / 1e9:.6f}",
        cost=f"{amount / 1e9:.6f}",
        reset=period.end.isoformat(),
    )
    raise QuotaExceeded(message, extra={"budget_scope": answer.scope})


async def _reserve(
    ctx: Context, book: LeaseBook | None, key: tuple[str, str, tuple[Scope, ...]], amount: int
) -> Taken | Refusal:
    """In Redis; a call that does not fit while leases hold money recalls them and tries again
    (with backoff, for up to `RECALL_WAIT_SECONDS`) until it fits or no lease is left open."""
    org_id, period, scopes = key
    deadline, delay, recalled = time.monotonic() + RECALL_WAIT_SECONDS, 0.005, False
    while True:
        if book is not None:
            answer = await book.reserve(key, amount)
        else:
            refusal = await ctx.store.budgets.reserve(org_id, period, list(scopes), amount)
            answer = refusal if isinstance(refusal, Refusal) else Taken()
        if isinstance(answer, Taken) or answer.leased <= 0 or time.monotonic() >= deadline:
            return answer
        if not recalled:
            await ctx.store.budgets.recall(org_id)
            recalled = True
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


def settlement_of(ctx: Context, reservation: Reservation, spent: int) -> Settlement:
    """The reservation replaced by what it really cost (0: released). Call once per
    reservation: a lease's is taken off the lease here (what it did not spend goes back to an
    open one)."""
    taken = reservation.amount
    book: LeaseBook | None = ctx.extras.get(LEASES)
    if reservation.lease_id is not None and book is not None:
        taken = book.finish(reservation.lease_id, reservation.amount, spent)
    return Settlement(
        reservation.org_id,
        reservation.period,
        reservation.scopes,
        taken,
        spent,
        reservation.thresholds,
        reservation.lease_id,
    )


async def settle(ctx: Context, reservation: Reservation | None, spent: int) -> None:
    """What the reservation really cost (0: release it); then the alerts it crossed. (A proxied
    call's settles with its usage counters instead: `inference.usage.write_calls`.)"""
    if reservation is None:
        return
    alerts = await ctx.store.budgets.settle(settlement_of(ctx, reservation, spent))
    await send_alerts(ctx, reservation, alerts)


async def send_alerts(
    ctx: Context, reservation: Reservation, alerts: list[tuple[str, float]]
) -> None:
    for scope, threshold in alerts:
        await send_alert(ctx, reservation, scope, threshold)


async def send_alert(ctx: Context, reservation: Reservation, scope: str, threshold: float) -> None:
    limit = next(found.limit_nanos for found in reservation.scopes if found.name == scope) or 0
    event = "budget.exhausted" if threshold >= 1 else "budget.threshold_reached"
    name = f"{reservation.org_id}:{reservation.period}:{scope}:{threshold}"
    digest = hashlib.sha256(name.encode()).hexdigest()[:24]
    data = {
        "object": "budget.alert",
        "scope": scope,
        "period_start": reservation.period,
        "threshold": threshold,
        "limit_usd": limit / 1e9,
    }
    log.info("budget_alert", org_id=reservation.org_id, scope=scope, threshold=threshold)
    try:
        await queue_callback(ctx, reservation.org_id, name, f"whdel_{digest}", event, data)
    except Exception:  # the spending is recorded; a lost alert must not fail the call
        log.error("budget_alert_failed", org_id=reservation.org_id, exc_info=True)
