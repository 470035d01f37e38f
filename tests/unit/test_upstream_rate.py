"""The upstream request budget's bucket (its Lua on fakeredis): polls yield to urgent calls, and
a 429 pauses every caller."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from service.config import Settings
from service.embedded import EmbeddedRedis
from service.errors import UpstreamRejected
from service.operations.context import Context
from service.operations.upstream_rate import within_budget
from service.store import Store
from service.store.upstream_rate import Priority, UpstreamRateRepository

# At 1 request a minute the bucket holds 2 tokens and refills one a minute: a slow test run
# cannot add one.
RPM = 1


def bucket() -> UpstreamRateRepository:
    return UpstreamRateRepository(fakeredis.FakeAsyncRedis(decode_responses=True))


def test_polls_leave_a_reserve_that_urgent_calls_may_take() -> None:
    async def run() -> list[float]:
        rate = bucket()
        return [
            await rate.take(Priority.POLL, RPM),
            await rate.take(Priority.POLL, RPM),  # would dig into the reserve
            await rate.take(Priority.URGENT, RPM),  # may
            await rate.take(Priority.URGENT, RPM),  # empty now
        ]

    first_poll, second_poll, urgent, empty = asyncio.run(run())
    assert first_poll == 0.0
    assert second_poll > 0.0
    assert urgent == 0.0
    assert empty > 30.0  # about a minute for the next token


def test_a_pause_holds_every_priority_for_its_seconds() -> None:
    async def run() -> tuple[float, float]:
        rate = bucket()
        await rate.pause(30.0)
        return await rate.take(Priority.URGENT, 6000), await rate.take(Priority.POLL, 6000)

    urgent, poll = asyncio.run(run())
    assert 20.0 < urgent <= 30.0
    assert 20.0 < poll <= 30.0


def test_a_shorter_pause_never_cuts_a_longer_one() -> None:
    async def run() -> float:
        rate = bucket()
        await rate.pause(30.0)
        await rate.pause(1.0)
        return await rate.take(Priority.URGENT, 6000)

    assert asyncio.run(run()) > 20.0


def test_callers_waiting_for_tokens_queue_instead_of_all_asking_again() -> None:
    # 600 a minute: a burst of 100 tokens, then one every 100 ms. 120 callers at once: 100 take
    # one each; the 20 left ask once, wait for their token and ask once more. Asking together
    # instead, every waiting caller would ask again at each new token (about 230 asks).
    callers, burst = 120, 100
    asks: list[Priority] = []

    async def run() -> None:
        ctx = Context(Settings(upstream_rpm=600), Store("redis://unused"))
        rate = bucket()
        take = rate.take

        async def counted(priority: Priority, rpm: int) -> float:
            asks.append(priority)
            return await take(priority, rpm)

        rate.take = counted  # type: ignore[method-assign]
        ctx.store.upstream_rate = rate

        async def call() -> None:
            await within_budget(ctx, Priority.URGENT, _answer)

        await asyncio.gather(*(call() for _ in range(callers)))

    asyncio.run(run())
    assert len(asks) <= burst + 2 * (callers - burst) + 1


async def _answer() -> str:
    return "ok"


def test_a_429_pauses_the_shared_bucket_for_its_retry_after() -> None:
    server = EmbeddedRedis().start()

    async def refused() -> None:
        extra = {"retry_after": 40.0}
        raise UpstreamRejected("Rate limit reached", status=429, extra=extra)

    async def run() -> float:
        ctx = Context(Settings(upstream_rpm=6000), Store(server.url))
        with pytest.raises(UpstreamRejected):
            await within_budget(ctx, Priority.POLL, refused)
        waited = await ctx.store.upstream_rate.take(Priority.URGENT, 6000)
        await ctx.aclose()
        return waited

    try:
        assert asyncio.run(run()) > 30.0
    finally:
        server.stop()
