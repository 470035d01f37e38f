"""Per-key rate-limit buckets in Redis, checked and charged atomically by Lua scripts.

A bucket is a hash `{level, at}`: what was left at `at` (Redis server time, ms); it refills at
`limit / 60000` per ms up to `limit`, so processes on any host agree on its state without
clocks of their own. `ADMIT` checks the requests and tokens buckets of a key together and
charges both only when both allow (one round trip); `ADJUST` corrects the tokens bucket once the
upstream reports the real usage (pipelined with the usage writes). A bucket expires once it
would be full again, so an idle key costs no memory.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from service.domain.inference.ratelimit import RateDecision, decision
from service.domain.tenancy.policy import RateLimits
from service.store import keys
from service.store.base import Repository

_LEVEL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, limit)
  local v = redis.call('HMGET', key, 'level', 'at')
  local lvl, at = tonumber(v[1]), tonumber(v[2])
  if not lvl then return limit end
  return math.min(limit, lvl + math.max(now - at, 0) * limit / 60000)
end
local function save(key, limit, lvl)
  redis.call('HSET', key, 'level', tostring(lvl), 'at', now)
  redis.call('PEXPIRE', key, math.ceil((limit - lvl) * 60000 / limit) + 1000)
end
local function full_in(limit, lvl)
  return math.ceil(math.max(limit - lvl, 0) * 60000 / limit)
end
"""

# KEYS: requests bucket, tokens bucket. ARGV: requests/min, tokens/min (0: none), token cost.
# Returns: allowed, remaining requests, ms to full, remaining tokens, ms to full, retry ms.
ADMIT = (
    _LEVEL
    + """
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local r, k, wait = 0, 0, 0
local cost = math.min(tonumber(ARGV[3]), tpm)
if rpm > 0 then
  r = level(KEYS[1], rpm)
  if r < 1 then wait = math.max(wait, (1 - r) * 60000 / rpm) end
end
if tpm > 0 then
  k = level(KEYS[2], tpm)
  if k < cost then wait = math.max(wait, (cost - k) * 60000 / tpm) end
end
if wait == 0 then
  if rpm > 0 then r = r - 1; save(KEYS[1], rpm, r) end
  if tpm > 0 then k = k - cost; save(KEYS[2], tpm, k) end
end
local r_reset, k_reset = 0, 0
if rpm > 0 then r_reset = full_in(rpm, r) end
if tpm > 0 then k_reset = full_in(tpm, k) end
return {wait == 0 and 1 or 0, math.floor(r), r_reset, math.floor(k), k_reset, math.ceil(wait)}
"""
)

# KEYS: tokens bucket. ARGV: tokens/min, tokens to give back (negative: to charge).
ADJUST = (
    _LEVEL
    + """
local tpm = tonumber(ARGV[1])
save(KEYS[1], tpm, math.min(tpm, level(KEYS[1], tpm) + tonumber(ARGV[2])))
return 1
"""
)

ADJUST_SHA = hashlib.sha1(ADJUST.encode(), usedforsecurity=False).hexdigest()


class RateLimitRepository(Repository):
    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self.admit_script: AsyncScript = redis.register_script(ADMIT)
        self.adjust_script: AsyncScript = redis.register_script(ADJUST)

    async def admit(self, key_id: str, limits: RateLimits, tokens: int) -> RateDecision:
        answer = await self.admit_script(
            keys=[keys.rate_bucket(key_id, "requests"), keys.rate_bucket(key_id, "tokens")],
            args=[limits.requests_per_minute or 0, limits.tokens_per_minute or 0, tokens],
        )
        values = [int(value) for value in answer]
        return decision(limits, values[0], values[1:5], values[5])

    async def adjust(self, key_id: str, tokens_per_minute: int, delta: int) -> None:
        await self.adjust_script(
            keys=[keys.rate_bucket(key_id, "tokens")], args=[tokens_per_minute, delta]
        )


def queue_adjust(pipe: Pipeline, key_id: str, tokens_per_minute: int, delta: int) -> None:
    """Queue the tokens correction on a pipeline, by hash: a script named in a pipeline would
    cost an extra SCRIPT EXISTS round trip per execute. If Redis lost the script, the pipeline
    answers `NoScriptError` for this command and the caller runs `adjust` instead."""
    pipe.evalsha(ADJUST_SHA, 1, keys.rate_bucket(key_id, "tokens"), tokens_per_minute, delta)
