"""Budget counters in Redis, checked and charged atomically by Lua scripts.

One hash per org and period holds, per scope (see `domain.budgets.limits`), `spent:<scope>` and
`reserved:<scope>` in nano-dollars, and `alert:<scope>:<threshold>` once that alert was claimed.
`RESERVE` checks every scope a call is charged to and reserves its worst case on all of them
only when none would go over, so any number of processes share one exact limit. `SETTLE` turns a
reservation into what was really spent (0 releases it) and claims the alerts the spending
crossed, each once per period. A period's hash expires a while after the period ends.
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

KEEP_SECONDS = 100 * 24 * 3600  # a period's counters outlive it, for the report

# KEYS: the period's hash. ARGV: amount, keep seconds, then scope name, limit per scope (-1:
# counted, not limited).
# Returns {1} when reserved, or {0, scope name, spent, reserved} for the first scope in the way.
RESERVE = """
local amount = tonumber(ARGV[1])
local fields = {}
for i = 3, #ARGV, 2 do
  fields[#fields + 1] = 'spent:' .. ARGV[i]
  fields[#fields + 1] = 'reserved:' .. ARGV[i]
end
local counts = redis.call('HMGET', KEYS[1], unpack(fields))
for i = 3, #ARGV, 2 do
  local scope, limit = ARGV[i], tonumber(ARGV[i + 1])
  local spent = tonumber(counts[i - 2] or '0')
  local reserved = tonumber(counts[i - 1] or '0')
  if limit >= 0 and (spent + reserved >= limit or spent + reserved + amount > limit) then
    return {0, scope, spent, reserved}
  end
end
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], 'reserved:' .. ARGV[i], amount)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return {1}
"""

# KEYS: the period's hash. ARGV: reserved, spent, threshold count, thresholds (fractions as
# strings), then scope name, limit per scope. Returns the alerts claimed: scope, threshold, ...
SETTLE = """
local reserved, spent, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local claimed = {}
for i = 4 + n, #ARGV, 2 do
  local scope, limit = ARGV[i], tonumber(ARGV[i + 1])
  local rest = redis.call('HINCRBY', KEYS[1], 'reserved:' .. scope, -reserved)
  if rest < 0 then redis.call('HSET', KEYS[1], 'reserved:' .. scope, 0) end
  local after = redis.call('HINCRBY', KEYS[1], 'spent:' .. scope, spent)
  for j = 4, 3 + n do
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


SETTLE_SHA = hashlib.sha1(SETTLE.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Settlement:
    """A reservation replaced by what was really spent (0: released)."""

    org_id: str
    period: str
    scopes: list[Scope]
    reserved: int
    spent: int
    thresholds: list[float]

    def arguments(self) -> list[str | int]:
        marks = [repr(float(share)) for share in self.thresholds]
        return [self.reserved, self.spent, len(marks), *marks, *_scope_args(self.scopes)]


def queue_settle(pipe: Pipeline, settlement: Settlement) -> None:
    """Queue a settlement on a pipeline, by hash (see `ratelimit.queue_adjust`): if Redis lost
    the script, the pipeline answers `NoScriptError` and the caller runs `settle` instead."""
    name = keys.budget(settlement.org_id, settlement.period)
    pipe.evalsha(SETTLE_SHA, 1, name, *settlement.arguments())


def alerts_of(answer: list[str]) -> list[tuple[str, float]]:
    """The alerts a settlement claimed: (scope, threshold)."""
    return [(str(answer[i]), float(answer[i + 1])) for i in range(0, len(answer), 2)]


@dataclass(frozen=True, slots=True)
class Refusal:
    scope: str
    spent: int
    reserved: int


@dataclass(frozen=True, slots=True)
class ScopeSpend:
    spent: int
    reserved: int


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

    async def reserve(
        self, org_id: str, period: str, scopes: list[Scope], amount: int
    ) -> Refusal | None:
        """Reserve `amount` on every scope, or nothing: the refusal names the scope."""
        answer = await self.reserve_script(
            keys=[keys.budget(org_id, period)],
            args=[amount, KEEP_SECONDS, *_scope_args(scopes)],
        )
        if int(answer[0]) == 1:
            return None
        return Refusal(str(answer[1]), int(answer[2]), int(answer[3]))

    async def settle(self, settlement: Settlement) -> list[tuple[str, float]]:
        """Replace the reservation by the spending; the alerts it crossed, claimed once."""
        name = keys.budget(settlement.org_id, settlement.period)
        return alerts_of(await self.settle_script(keys=[name], args=settlement.arguments()))

    async def spending(self, org_id: str, period: str) -> dict[str, ScopeSpend]:
        """Spent and reserved per scope in the period."""
        raw = await self.redis.hgetall(keys.budget(org_id, period))
        found: dict[str, ScopeSpend] = {}
        for field in raw:
            kind, _, scope = field.partition(":")
            if kind in ("spent", "reserved") and scope not in found:
                found[scope] = ScopeSpend(
                    int(raw.get(f"spent:{scope}", 0)), int(raw.get(f"reserved:{scope}", 0))
                )
        return found
