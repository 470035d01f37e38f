"""Budget counters in Redis, checked and charged atomically by Lua scripts.

One hash per org and period holds, per scope (see `domain.budgets.limits`), `spent:<scope>` and
`reserved:<scope>` in nano-dollars, and `alert:<scope>:<threshold>` once that alert was claimed.
`RESERVE` checks every scope a call is charged to and reserves its worst case on all of them
only when none would go over, so any number of processes share one exact limit. `SETTLE` turns a
reservation into what was really spent (0 releases it) and claims the alerts the spending
crossed, each once per period. A period's hash expires a while after the period ends.

A *lease* is a reservation a gateway process holds for the calls it is about to make, so a busy
key's calls reserve in the process, without a round trip (`operations.budgets.leases`). A second
hash per org and period records each lease: `<lease id>` -> `expiry ms|amount|open|scopes`.
Its amount is reserved on its scopes like any reservation, and shrinks as the calls it funded
settle (`SETTLE` with the lease's id) or as its holder gives back what it did not use
(`RETURN`, which also renews it). A lease its holder stopped renewing (a process that died)
expires, and the next `RESERVE` of the org releases it. `RESERVE` grants a lease only on room
to spare (a sixteenth of what is left, at most the size asked, at least twice the call), and
never in the hold after a recall: when a call does not fit while other processes hold open
leases, `RESERVE` sets that hold and answers how much they hold, so the caller can recall them
and try again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from service.domain.budgets.limits import Scope
from service.store import keys
from service.store.base import Repository
from service.store.tenancy.invalidation import publish

KEEP_SECONDS = 100 * 24 * 3600  # a period's counters outlive it, for the report
LEASE_SHARE = 16  # a lease takes at most this fraction of what is left
RECALLED = "_recalled"  # the leases hash's field: no lease is granted before this time (ms)
RECALL_HOLD_MS = 10_000  # after a call found leases in its way

# Shared by the scripts: KEYS[1] the period's hash, KEYS[2] its leases.
_LEASES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function parse(raw)
  local exp, amount, open, scopes = string.match(raw, '^(%d+)|(%-?%d+)|(%d)|(.*)$')
  return tonumber(exp), tonumber(amount), open == '1', scopes
end
local function release(scopes, value)
  if value <= 0 then return end
  for scope in string.gmatch(scopes, '%S+') do
    if redis.call('HINCRBY', KEYS[1], 'reserved:' .. scope, -value) < 0 then
      redis.call('HSET', KEYS[1], 'reserved:' .. scope, 0)
    end
  end
end
local function save(id, exp, amount, open, scopes)
  if amount <= 0 and not open then
    redis.call('HDEL', KEYS[2], id)
  else
    local record = string.format('%.0f|%.0f|%s|%s', exp, amount, open and '1' or '0', scopes)
    redis.call('HSET', KEYS[2], id, record)
  end
end
-- Give `value` of a lease back (its amount and its scopes' reservations shrink), close it when
-- asked, renew it for `ttl` ms. False when there is no such lease.
local function give_back(id, value, close, ttl)
  local raw = redis.call('HGET', KEYS[2], id)
  if not raw then return false end
  local exp, amount, open, scopes = parse(raw)
  value = math.min(math.max(value, 0), math.max(amount, 0))
  release(scopes, value)
  save(id, now + ttl, amount - value, open and not close, scopes)
  return true
end
"""

# KEYS: the period's hash, its leases. ARGV: amount, keep seconds, lease size asked (0: none),
# the new lease's id, lease ttl ms, recall hold ms, a lease to close first ('' none) and what
# to give back of it, then scope name, limit per scope (-1: counted, not limited).
# Returns {1} when reserved, {2, size} when a lease of `size` (the amount included) was granted,
# or {0, scope name, spent, reserved, open leases' amount} for the first scope in the way.
RESERVE = (
    _LEASES
    + """
local amount, keep, ask = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, ttl, hold = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
if ARGV[7] ~= '' then give_back(ARGV[7], tonumber(ARGV[8]), true, ttl) end
local leased, recalled = 0, 0
local records = redis.call('HGETALL', KEYS[2])
for i = 1, #records, 2 do
  if records[i] == '"""
    + RECALLED
    + """' then
    recalled = tonumber(records[i + 1])
  else
    local exp, held, open, scopes = parse(records[i + 1])
    if exp < now then  -- its holder stopped renewing it: what it held comes back
      release(scopes, held)
      redis.call('HDEL', KEYS[2], records[i])
    elseif open then
      leased = leased + math.max(held, 0)
    end
  end
end
local fields = {}
for i = 9, #ARGV, 2 do
  fields[#fields + 1] = 'spent:' .. ARGV[i]
  fields[#fields + 1] = 'reserved:' .. ARGV[i]
end
local counts = redis.call('HMGET', KEYS[1], unpack(fields))
local size = ask
for i = 9, #ARGV, 2 do
  local scope, limit = ARGV[i], tonumber(ARGV[i + 1])
  local spent = tonumber(counts[i - 8] or '0')
  local reserved = tonumber(counts[i - 7] or '0')
  if limit >= 0 and (spent + reserved >= limit or spent + reserved + amount > limit) then
    if leased > 0 then redis.call('HSET', KEYS[2], '"""
    + RECALLED
    + """', now + hold) end
    return {0, scope, spent, reserved, leased}
  end
  if limit >= 0 then
    size = math.min(size, math.floor((limit - spent - reserved) / """
    + str(LEASE_SHARE)
    + """))
  end
end
local names, answer = {}, {1}
if ask > 0 and now >= recalled and size >= 2 * amount and size > 0 then
  amount, answer = size, {2, size}
end
for i = 9, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], 'reserved:' .. ARGV[i], amount)
  names[#names + 1] = ARGV[i]
end
if answer[1] == 2 then save(lease, now + ttl, size, true, table.concat(names, ' ')) end
redis.call('EXPIRE', KEYS[1], keep)
redis.call('EXPIRE', KEYS[2], keep)
return answer
"""
)

# KEYS: the period's hash, its leases. ARGV: the lease the call was funded by ('' none),
# reserved, spent, threshold count, thresholds (fractions as strings), then scope name, limit
# per scope. `reserved` leaves the lease with the call (a lease that expired meanwhile gave its
# reservation back already). Returns the alerts claimed: scope, threshold, ...
SETTLE = (
    _LEASES
    + """
local reserved, spent, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[1] ~= '' then
  local raw = redis.call('HGET', KEYS[2], ARGV[1])
  if raw then
    local exp, amount, open, scopes = parse(raw)
    save(ARGV[1], exp, amount - reserved, open, scopes)
  else
    reserved = 0
  end
end
local claimed = {}
for i = 5 + n, #ARGV, 2 do
  local scope, limit = ARGV[i], tonumber(ARGV[i + 1])
  local rest = redis.call('HINCRBY', KEYS[1], 'reserved:' .. scope, -reserved)
  if rest < 0 then redis.call('HSET', KEYS[1], 'reserved:' .. scope, 0) end
  local after = redis.call('HINCRBY', KEYS[1], 'spent:' .. scope, spent)
  for j = 5, 4 + n do
    if limit > 0 and spent > 0 and after >= tonumber(ARGV[j]) * limit then
      if redis.call('HSETNX', KEYS[1], 'alert:' .. scope .. ':' .. ARGV[j], 1) == 1 then
        table.insert(claimed, scope)
        table.insert(claimed, ARGV[j])
      end
    end
  end
end
return claimed
"""
)

# KEYS: the period's hash, its leases. ARGV: lease id, amount to give back, 1 to close it, ttl
# ms. Returns 1, or 0 when the lease is gone (it expired and was released).
RETURN = (
    _LEASES
    + """
if give_back(ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4])) then return 1 end
return 0
"""
)

SETTLE_SHA = hashlib.sha1(SETTLE.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Settlement:
    """A reservation replaced by what was really spent (0: released); `lease_id`: the lease
    that funded it, which `reserved` leaves."""

    org_id: str
    period: str
    scopes: list[Scope]
    reserved: int
    spent: int
    thresholds: list[float]
    lease_id: str | None = None

    def keys(self) -> list[str]:
        return [keys.budget(self.org_id, self.period), keys.budget_leases(self.org_id, self.period)]

    def arguments(self) -> list[str | int]:
        marks = [repr(float(share)) for share in self.thresholds]
        return [
            self.lease_id or "",
            self.reserved,
            self.spent,
            len(marks),
            *marks,
            *_scope_args(self.scopes),
        ]


def queue_settle(pipe: Pipeline, settlement: Settlement) -> None:
    """Queue a settlement on a pipeline, by hash (see `ratelimit.queue_adjust`): if Redis lost
    the script, the pipeline answers `NoScriptError` and the caller runs `settle` instead."""
    pipe.evalsha(SETTLE_SHA, 2, *settlement.keys(), *settlement.arguments())


def alerts_of(answer: list[str]) -> list[tuple[str, float]]:
    """The alerts a settlement claimed: (scope, threshold)."""
    return [(str(answer[i]), float(answer[i + 1])) for i in range(0, len(answer), 2)]


@dataclass(frozen=True, slots=True)
class Refusal:
    scope: str
    spent: int
    reserved: int
    leased: int = 0  # what other processes' open leases hold: a recall may make room


@dataclass(frozen=True, slots=True)
class LeaseAsk:
    """A lease asked for with a reservation; `closing`: this process's lease for the same
    scopes, closed in the same call with `give_back` returned."""

    lease_id: str
    size: int
    ttl_ms: int
    closing: str | None = None
    give_back: int = 0


@dataclass(frozen=True, slots=True)
class Leased:
    """A lease granted with the reservation: `size` nano-dollars, the call's amount included."""

    size: int


@dataclass(frozen=True, slots=True)
class ScopeSpend:
    spent: int
    reserved: int  # leases included
    leased: int = 0


def _scope_args(scopes: list[Scope]) -> list[str | int]:
    return [
        value
        for scope in scopes
        for value in (scope.name, -1 if scope.limit_nanos is None else scope.limit_nanos)
    ]


class BudgetRepository(Repository):
    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self.reserve_script: AsyncScript = redis.register_script(RESERVE)
        self.settle_script: AsyncScript = redis.register_script(SETTLE)
        self.return_script: AsyncScript = redis.register_script(RETURN)

    async def reserve(
        self,
        org_id: str,
        period: str,
        scopes: list[Scope],
        amount: int,
        lease: LeaseAsk | None = None,
    ) -> Refusal | Leased | None:
        """Reserve `amount` on every scope, or nothing: the refusal names the scope. With
        `lease`, a lease may be granted instead (`Leased`)."""
        ask = lease or LeaseAsk("", 0, 0)
        answer = await self.reserve_script(
            keys=[keys.budget(org_id, period), keys.budget_leases(org_id, period)],
            args=[
                amount,
                KEEP_SECONDS,
                ask.size,
                ask.lease_id,
                ask.ttl_ms,
                RECALL_HOLD_MS,
                ask.closing or "",
                ask.give_back,
                *_scope_args(scopes),
            ],
        )
        if int(answer[0]) == 1:
            return None
        if int(answer[0]) == 2:
            return Leased(int(answer[1]))
        return Refusal(str(answer[1]), int(answer[2]), int(answer[3]), int(answer[4]))

    async def settle(self, settlement: Settlement) -> list[tuple[str, float]]:
        """Replace the reservation by the spending; the alerts it crossed, claimed once."""
        answer = await self.settle_script(keys=settlement.keys(), args=settlement.arguments())
        return alerts_of(answer)

    async def give_back(
        self, org_id: str, period: str, lease_id: str, amount: int, *, close: bool, ttl_ms: int
    ) -> bool:
        """Return `amount` of a lease (closing it when asked) and renew it; False when it is
        gone (it expired and its reservation was released)."""
        answer = await self.return_script(
            keys=[keys.budget(org_id, period), keys.budget_leases(org_id, period)],
            args=[lease_id, amount, 1 if close else 0, ttl_ms],
        )
        return bool(int(answer))

    async def recall(self, org_id: str) -> None:
        """Ask every process to give back the org's open leases (the org's notice, which also
        drops its cached views there)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            publish(pipe, org_id)
            await pipe.execute()

    async def spending(self, org_id: str, period: str) -> dict[str, ScopeSpend]:
        """Spent, reserved (leases included) and leased per scope in the period."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.budget(org_id, period))
            pipe.hgetall(keys.budget_leases(org_id, period))
            raw, leases = await pipe.execute()
        leased: dict[str, int] = {}
        for field, record in leases.items():
            if field != RECALLED:
                _, amount, _, names = record.split("|", 3)
                for scope in names.split():
                    leased[scope] = leased.get(scope, 0) + max(int(amount), 0)
        found: dict[str, ScopeSpend] = {}
        for field in raw:
            kind, _, scope = field.partition(":")
            if kind in ("spent", "reserved") and scope not in found:
                found[scope] = ScopeSpend(
                    int(raw.get(f"spent:{scope}", 0)),
                    int(raw.get(f"reserved:{scope}", 0)),
                    leased.get(scope, 0),
                )
        return found
