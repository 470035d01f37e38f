"""Reserve before spending, settle after.

`reserve` charges a worst-case cost to every scope of the org's budgets that applies (one Lua
call, so every process shares one exact limit) and raises `QuotaExceeded` when any would go
over; an org without budgets costs nothing here. `settle` replaces the reservation with what was
really spent (0 releases it) and sends the alerts that crossed a threshold, each once per period,
as `budget.threshold_reached` / `budget.exhausted` callbacks to the org's `webhook_url`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from service.domain.budgets.limits import Kind, Scope, period_of, scopes_for
from service.domain.tenancy.policy import Budgets
from service.errors import QuotaExceeded
from service.logging import get_logger
from service.operations.context import Context
from service.operations.webhooks.events import queue_callback
from service.store.budgets import Settlement

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
) -> Reservation | None:
    """Reserve `amount` nano-dollars, or raise `QuotaExceeded`; None when there are no budgets."""
    if budgets is None:
        return None
    period = period_of(budgets, _now())
    scopes = scopes_for(budgets, key_id, kind)
    refusal = await ctx.store.budgets.reserve(org_id, period.name, scopes, amount)
    if refusal is None:
        return Reservation(org_id, period.name, scopes, amount, budgets.alert_thresholds)
    limit = next(scope.limit_nanos for scope in scopes if scope.name == refusal.scope) or 0
    remaining = max(limit - refusal.spent - refusal.reserved, 0)
    message = EXHAUSTED_MESSAGE.format(
        scope=refusal.scope,
        remaining=f"{remaining / 1e9:.6f}",
        cost=f"{amount / 1e9:.6f}",
        reset=period.end.isoformat(),
    )
    raise QuotaExceeded(message, extra={"budget_scope": refusal.scope})


def settlement_of(reservation: Reservation, spent: int) -> Settlement:
    """The reservation replaced by what it really cost (0: released)."""
    scopes, thresholds = reservation.scopes, reservation.thresholds
    return Settlement(
        reservation.org_id, reservation.period, scopes, reservation.amount, spent, thresholds
    )


async def settle(ctx: Context, reservation: Reservation | None, spent: int) -> None:
    """What the reservation really cost (0: release it); then the alerts it crossed. (A proxied
    call's settles with its usage counters instead: `inference.usage.write_calls`.)"""
    if reservation is None:
        return
    alerts = await ctx.store.budgets.settle(settlement_of(reservation, spent))
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
