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
