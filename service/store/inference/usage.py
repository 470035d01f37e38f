"""Token usage per org, key, model and UTC day, written once per proxied call.

One hash per org and day holds integer counters named `<key id>|<model>|<endpoint>|<metric>`:
prompt and completion tokens (and of them, cached prompt and reasoning tokens), requests, and
the estimated cost in nano-dollars (integers add up exactly where floats would drift). The
endpoint is the proxied API (`chat`, `responses`, `embeddings`, ...); counters written before
endpoints were counted, and fine-tuning's trained tokens, are `<key id>|<model>|<metric>`.
The counters, rate-limit corrections and budget settlements of a batch of calls go in one
pipelined round trip.
Days are kept `RETENTION_DAYS`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from service.store import keys
from service.store.base import Repository
from service.store.budgets import BudgetRepository, Settlement, alerts_of, queue_settle
from service.store.inference.ratelimit import RateLimitRepository, queue_adjust

RETENTION_DAYS = 400
METRICS = {
    "p": "prompt_tokens",
    "c": "completion_tokens",
    "t": "trained_tokens",
    "k": "cached_tokens",
    "r": "reasoning_tokens",
    "n": "requests",
    "$": "cost_nanos",
}


@dataclass(frozen=True, slots=True)
class UsageEntry:
    org_id: str
    key_id: str
    model: str
    day: str
    prompt_tokens: int
    completion_tokens: int
    cost_nanos: int
    requests: int = 1
    trained_tokens: int = 0
    endpoint: str = ""
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TokenCorrection:
    key_id: str
    tokens_per_minute: int
    delta: int


@dataclass(slots=True)
class UsageRow:
    day: str
    key_id: str
    model: str
    endpoint: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    trained_tokens: int = 0
    requests: int = 0
    cost_nanos: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class UsageRepository(Repository):
    def __init__(
        self, redis: Redis, rate_limits: RateLimitRepository, budgets: BudgetRepository
    ) -> None:
        super().__init__(redis)
        self.rate_limits = rate_limits
        self.budgets = budgets

    async def record(
        self,
        entries: list[UsageEntry],
        corrections: list[TokenCorrection],
        settlements: list[Settlement] | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Count the entries, apply the corrections and the budget settlements in one round
        trip (entries of the same org, day, key and model are summed first, as are corrections
        of the same key); the alerts each settlement claimed, in order."""
        entries, corrections = _merged(entries), _merged_corrections(corrections)
        settlements = settlements or []
        if not entries and not corrections and not settlements:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for settlement in settlements:
                queue_settle(pipe, settlement)
            for entry in entries:
                _count(pipe, entry)
            for name in {keys.usage_day(entry.org_id, entry.day) for entry in entries}:
                pipe.expire(name, RETENTION_DAYS * 86_400)
            for fix in corrections:
                queue_adjust(pipe, fix.key_id, fix.tokens_per_minute, fix.delta)
            results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, NoScriptError):
                raise result
        settled, rest = results[: len(settlements)], results[len(settlements) :]
        if any(isinstance(result, NoScriptError) for result in rest):
            for fix in corrections:
                await self.rate_limits.adjust(fix.key_id, fix.tokens_per_minute, fix.delta)
        return [
            await self.budgets.settle(settlement)
            if isinstance(answer, NoScriptError)
            else alerts_of(answer)
            for settlement, answer in zip(settlements, settled, strict=True)
        ]

    async def rows(self, org_id: str, days: list[str]) -> list[UsageRow]:
        """Every (day, key, model) row of the given days."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(keys.usage_day(org_id, day))
            hashes = await pipe.execute()
        rows: list[UsageRow] = []
        for day, counters in zip(days, hashes, strict=True):
            rows.extend(_rows(day, counters))
        return rows


def _count(pipe: Pipeline, entry: UsageEntry) -> None:
    name = keys.usage_day(entry.org_id, entry.day)
    endpoint = f"{entry.endpoint}|" if entry.endpoint else ""
    prefix = f"{entry.key_id}|{entry.model}|{endpoint}"
    counts = {
        "p": entry.prompt_tokens,
        "c": entry.completion_tokens,
        "t": entry.trained_tokens,
        "k": entry.cached_tokens,
        "r": entry.reasoning_tokens,
        "n": entry.requests,
        "$": entry.cost_nanos,
    }
    for metric, count in counts.items():
        if count:  # a counter never counted reads as 0
            pipe.hincrby(name, prefix + metric, count)


def _merged(entries: list[UsageEntry]) -> list[UsageEntry]:
    sums: dict[tuple[str, str, str, str, str], UsageEntry] = {}
    for entry in entries:
        group = (entry.org_id, entry.day, entry.key_id, entry.model, entry.endpoint)
        seen = sums.get(group)
        sums[group] = (
            entry
            if seen is None
            else replace(
                seen,
                prompt_tokens=seen.prompt_tokens + entry.prompt_tokens,
                completion_tokens=seen.completion_tokens + entry.completion_tokens,
                trained_tokens=seen.trained_tokens + entry.trained_tokens,
                cached_tokens=seen.cached_tokens + entry.cached_tokens,
                reasoning_tokens=seen.reasoning_tokens + entry.reasoning_tokens,
                cost_nanos=seen.cost_nanos + entry.cost_nanos,
                requests=seen.requests + entry.requests,
            )
        )
    return list(sums.values())


def _merged_corrections(corrections: list[TokenCorrection]) -> list[TokenCorrection]:
    sums: dict[str, TokenCorrection] = {}
    for fix in corrections:
        seen = sums.get(fix.key_id)
        sums[fix.key_id] = fix if seen is None else replace(seen, delta=seen.delta + fix.delta)
    return [fix for fix in sums.values() if fix.delta]


def _rows(day: str, counters: dict[str, str]) -> list[UsageRow]:
    found: dict[tuple[str, str, str | None], UsageRow] = {}
    for field, value in counters.items():
        parts = field.split("|")
        if len(parts) == 4:
            key_id, model, endpoint, metric = parts
        elif len(parts) == 3:
            (key_id, model, metric), endpoint = parts, None
        else:
            continue
        if metric not in METRICS:
            continue
        row = found.setdefault((key_id, model, endpoint), UsageRow(day, key_id, model, endpoint))
        setattr(row, METRICS[metric], int(value))
    return list(found.values())
