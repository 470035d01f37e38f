"""Budget leases: a busy key's calls reserve inside the process, without a round trip.

A call's reservation is one Lua call in Redis (`store.budgets`), exact across processes, but a
round trip on every call's way out. A gateway process that keeps reserving for the same org,
key and kind asks, with its next reservation, for a *lease*: a larger reservation it holds for
the calls to come (`TUNEGATE_BUDGET_LEASE_USD` at most, a sixteenth of what is left, granted in
the same atomic step). Its next calls take their worst case from the lease in memory. Each
settles as before, pipelined with its usage after the reply; the lease shrinks by what it
spent, and the rest of its worst case goes back to the lease.

The limit still holds exactly: the lease is reserved in Redis on every scope it serves, so no
process can spend what another holds. What leases may cost is a refusal that was not needed,
so they are given back:
- when unused for `IDLE_SECONDS`, when the org changes (its policy, keys or models: the org's
  notice every process already listens to), and at shutdown;
- when a call does not fit while other processes hold open leases. `RESERVE` then stops
  granting leases for the org for a while (`store.budgets.RECALL_HOLD_MS`), the caller
  publishes the org's notice, every holder gives back what it did not use, and the call tries
  again for up to `RECALL_WAIT_SECONDS`.

Leases are kept only while this process hears the notices (`ModelRepository.notices_live`).
Each is renewed while it serves calls; one a dead process held expires after `TTL_SECONDS`
and goes back to the budget. A call funded by a lease that expired meanwhile settles as spent
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from service.domain.budgets.limits import Kind, Period, Scope, period_of, scopes_for, to_nanos
from service.domain.tenancy.policy import Budgets
from service.logging import get_logger
from service.operations.context import Context
from service.store.budgets import BudgetRepository, LeaseAsk, Leased, Refusal

log = get_logger("tunegate.budgets")
LEASES = "budget_leases"  # ctx.extras: the serve process's LeaseBook
TTL_SECONDS = 30.0
RENEW_SECONDS = 10.0  # renewed this long after it was granted or last renewed
IDLE_SECONDS = 2.0
HOT_SECONDS = 1.0  # a second reservation within this asks for a lease
NO_LEASE_SECONDS = 1.0  # after a lease was not granted, ask again only after this
RECALL_WAIT_SECONDS = 1.0
TICK_SECONDS = 0.5
MAX_REMEMBERED = 10_000

LeaseKey = tuple[str, str, tuple[Scope, ...]]  # org, period, scopes (limits included)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a call of one key and kind is charged to this period, under one policy."""

    budgets: Budgets  # the policy's own object: a changed policy is a new one
    period: Period
    scopes: list[Scope]
    key: LeaseKey


def plan_for(
    budgets: Budgets, org_id: str, key_id: str | None, kind: Kind, now: dt.datetime
) -> Plan:
    period = period_of(budgets, now)
    scopes = scopes_for(budgets, key_id, kind)
    return Plan(budgets, period, scopes, (org_id, period.name, tuple(scopes)))


@dataclass(slots=True)
class Lease:
    id: str
    key: LeaseKey
    free: int  # not taken by a call
    deadline: float  # monotonic: takes stop here, well before it expires in Redis
    used_at: float
    open: bool = True
    calls: int = 0  # taken and not yet settled


@dataclass(frozen=True, slots=True)
class Taken:
    """A reservation made: `lease_id` when a lease funds it."""

    lease_id: str | None = None


@dataclass(slots=True)
class LeaseBook:
    """The leases of one gateway process (one per `serve` process, in `ctx.extras`)."""

    store: BudgetRepository
    size_nanos: int
    live: Callable[[], bool]
    leases: dict[LeaseKey, Lease] = field(default_factory=dict)  # the open one per key
    by_id: dict[str, Lease] = field(default_factory=dict)  # every lease with calls to settle
    recent: dict[LeaseKey, float] = field(default_factory=dict)  # last reservation per key
    refused: dict[LeaseKey, float] = field(default_factory=dict)  # lease not granted, until
    locks: dict[LeaseKey, asyncio.Lock] = field(default_factory=dict)
    closing: set[asyncio.Task[None]] = field(default_factory=set)
    ticker: asyncio.Task[None] | None = None
    plans: dict[tuple[int, str | None, str], Plan] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic

    def plan(
        self, budgets: Budgets, org_id: str, key_id: str | None, kind: Kind, now: dt.datetime
    ) -> Plan:
        """`plan_for`, kept while the policy object and the period last (a busy key's calls
        then skip working it out again)."""
        found = self.plans.get((id(budgets), key_id, kind))
        if found is not None and found.budgets is budgets and now < found.period.end:
            return found
        if len(self.plans) >= MAX_REMEMBERED:
            self.plans.clear()
        plan = self.plans[(id(budgets), key_id, kind)] = plan_for(
            budgets, org_id, key_id, kind, now
        )
        return plan

    def take(self, key: LeaseKey, amount: int) -> str | None:
        """The id of the open lease that now funds `amount`, or None."""
        lease = self.leases.get(key)
        now = self.clock()
        if lease is None or lease.free < amount or now >= lease.deadline or not self.live():
            return None
        lease.free -= amount
        lease.calls += 1
        lease.used_at = now
        return lease.id

    async def reserve(self, key: LeaseKey, amount: int) -> Taken | Refusal:
        """A reservation in Redis, with a lease asked for when the key is busy here."""
        now = self.clock()
        hot = now - self.recent.get(key, -HOT_SECONDS) < HOT_SECONDS
        if len(self.recent) >= MAX_REMEMBERED:
            self.recent.clear()
            self.refused.clear()
        self.recent[key] = now
        if not hot or self.refused.get(key, 0.0) > now or not self.live():
            return await self._ask(key, amount, None)
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:  # one lease asked at a time: the calls waiting take from it
            if (lease_id := self.take(key, amount)) is not None:
                return Taken(lease_id)
            ask = LeaseAsk(
                "bl_" + secrets.token_hex(8),
                self.size_nanos,
                round(TTL_SECONDS * 1000),
            )
            if (spent := self.leases.get(key)) is not None:  # too small or too old: closed
                ask = replace(ask, closing=spent.id, give_back=spent.free)
                self._closed(spent)
            return await self._ask(key, amount, ask)

    async def _ask(self, key: LeaseKey, amount: int, ask: LeaseAsk | None) -> Taken | Refusal:
        org_id, period, scopes = key
        sent = self.clock()
        answer = await self.store.reserve(org_id, period, list(scopes), amount, ask)
        if isinstance(answer, Refusal):
            return answer
        if not isinstance(answer, Leased):
            if ask is not None:
                self.refused[key] = self.clock() + NO_LEASE_SECONDS
            return Taken()
        assert ask is not None
        free = answer.size - amount
        lease = Lease(ask.lease_id, key, free, sent + TTL_SECONDS / 2, sent, calls=1)
        self.leases[key] = self.by_id[lease.id] = lease
        self._start()
        return Taken(lease.id)

    def finish(self, lease_id: str, amount: int, spent: int) -> int:
        """A call the lease funded ended having spent `spent` of its `amount`: what of the
        lease its settlement takes (the rest of an open lease's worst case goes back to it)."""
        lease = self.by_id.get(lease_id)
        if lease is None:
            return amount
        lease.calls -= 1
        if lease.open:
            used = min(spent, amount)
            lease.free += amount - used
            return used
        if lease.calls <= 0:
            self.by_id.pop(lease_id, None)
        return amount

    def recall(self, org_id: str | None) -> None:
        """Give back the org's open leases (None: every org's), as the org's notice arrives."""
        for lease in list(self.leases.values()):
            if org_id is None or lease.key[0] == org_id:
                self._give_back(lease)

    def _closed(self, lease: Lease) -> None:
        """Closed here: no call takes from it any more."""
        lease.open, lease.free = False, 0
        if self.leases.get(lease.key) is lease:
            del self.leases[lease.key]
        if lease.calls <= 0:
            self.by_id.pop(lease.id, None)

    def _give_back(self, lease: Lease) -> None:
        free = lease.free
        self._closed(lease)
        task = asyncio.get_running_loop().create_task(self._send(lease, free, close=True))
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    async def _send(self, lease: Lease, amount: int, *, close: bool) -> bool | None:
        """True: done (and renewed); False: the lease is gone; None: Redis did not answer (a
        lease not renewed stops funding calls at its deadline, well before it expires)."""
        org_id, period, _ = lease.key
        try:
            return await self.store.give_back(
                org_id, period, lease.id, amount, close=close, ttl_ms=round(TTL_SECONDS * 1000)
            )
        except Exception as error:  # it expires and goes back by itself
            log.warning("budget_lease_return_failed", lease_id=lease.id, error=str(error))
            return None

    def _start(self) -> None:
        if self.ticker is None or self.ticker.done():
            self.ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        while self.by_id:
            await asyncio.sleep(TICK_SECONDS)
            await self.tick()

    async def tick(self) -> None:
        """Give back idle leases, renew the ones still in use."""
        now = self.clock()
        for lease in list(self.by_id.values()):
            if lease.open and (now - lease.used_at >= IDLE_SECONDS or not self.live()):
                self._give_back(lease)
            elif lease.deadline - now < TTL_SECONDS / 2 - RENEW_SECONDS:
                await self._renew(lease)

    async def _renew(self, lease: Lease) -> None:
        sent = self.clock()
        if lease.calls <= 0 and not lease.open:
            self.by_id.pop(lease.id, None)
            return
        renewed = await self._send(lease, 0, close=False)
        if renewed:
            lease.deadline = sent + TTL_SECONDS / 2
        elif renewed is False:  # gone: its calls settle as spent only
            self._closed(lease)
            self.by_id.pop(lease.id, None)

    async def aclose(self) -> None:
        """At shutdown: every open lease given back."""
        self.recall(None)
        if self.ticker is not None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker
        if self.closing:
            await asyncio.gather(*self.closing, return_exceptions=True)


def open_book(ctx: Context) -> LeaseBook | None:
    """This gateway process's leases (None when `TUNEGATE_BUDGET_LEASE_USD` is 0), told of the
    org notices its cached views hear."""
    size = to_nanos(ctx.settings.budget_lease_usd)
    if size <= 0:
        return None
    models = ctx.store.models
    book = LeaseBook(ctx.store.budgets, size, live=lambda: models.notices_live)
    models.observers.append(book.recall)
    ctx.extras[LEASES] = book
    return book
