"""The upstream request budget: one token bucket in Redis that every worker's fine-tuning calls
draw from, taken atomically by a Lua script.

The bucket is a hash `{level, at, paused}` (Redis server time, ms, so hosts agree without clocks
of their own). It refills at `rpm / 60000` per ms up to `burst`. Calls come in two priorities:
`URGENT` ones (creates, cancels, uploads) may take it down to empty, while `POLL` ones only take
what is above a reserve kept for the urgent, so polls yield to them. A 429 from the upstream
pauses the bucket for its `Retry-After` and empties it: every worker slows down, not only the
one that was refused.

A caller may ask for several tokens at once (`want`): a worker with many calls queued takes what
they need in one step, and is told to wait until that many (at most a second's worth) are there.
A refusal writes nothing (but the time a bucket without one starts refilling from).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service.store import keys
from service.store.base import Repository

# KEYS: bucket. ARGV: rpm, burst, reserve (tokens a poll must leave), want.
# Returns {tokens taken (0 to want), ms to wait before asking again when none was}.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, burst, reserve = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local v = redis.call('HMGET', KEYS[1], 'level', 'at', 'paused')
local paused = tonumber(v[3]) or 0
if paused > now then return {0, paused - now} end
local level = tonumber(v[1]) or burst
local at = tonumber(v[2]) or now
level = math.min(burst, level + math.max(now - at, 0) * rpm / 60000)
local room = math.floor(level - reserve)
if room < 1 then
  if not v[2] then redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', now) end
  local need = math.max(1, math.min(want, math.floor(rpm / 60)))
  return {0, math.ceil((reserve + need - level) * 60000 / rpm)}
end
local taken = math.min(want, room)
redis.call('HSET', KEYS[1], 'level', tostring(level - taken), 'at', now)
redis.call('PEXPIRE', KEYS[1], 3600000)
return {taken, 0}
"""

# KEYS: bucket. ARGV: ms to pause. Empties the bucket and pauses it (never shortens a pause).
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local paused = tonumber(redis.call('HGET', KEYS[1], 'paused')) or 0
redis.call('HSET', KEYS[1], 'level', '0', 'at', math.max(until_ms, paused),
  'paused', math.max(until_ms, paused))
redis.call('PEXPIRE', KEYS[1], 3600000)
return 1
"""

POLL_RESERVE = 0.25  # of the burst, kept for urgent calls
BURST_SECONDS = 10.0  # the bucket holds this many seconds of its rate


class Priority(StrEnum):
    URGENT = "urgent"  # creates, cancels, pauses, resumes, uploads
    POLL = "poll"  # list walks, retrieves, events, checkpoints, result files


class Taken(NamedTuple):
    tokens: int  # how many were taken (0: none, wait)
    wait: float  # seconds to wait before asking again, when none was taken


class UpstreamRateRepository(Repository):
    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self._take: AsyncScript = redis.register_script(_TAKE)
        self._pause: AsyncScript = redis.register_script(_PAUSE)

    async def take(self, priority: Priority, rpm: int, want: int = 1) -> Taken:
        """Take up to `want` requests' tokens (at least one), or learn how long to wait."""
        burst = max(2.0, rpm * BURST_SECONDS / 60)
        reserve = burst * POLL_RESERVE if priority == Priority.POLL else 0.0
        args = [rpm, burst, reserve, max(1, want)]
        tokens, wait_ms = await self._take(keys=[keys.upstream_bucket()], args=args)
        return Taken(int(tokens), int(wait_ms) / 1000)

    async def pause(self, seconds: float) -> None:
        """The upstream said 429: nobody calls it for `seconds`."""
        await self._pause(keys=[keys.upstream_bucket()], args=[max(1, int(seconds * 1000))])
