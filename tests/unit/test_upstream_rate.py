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
from service.store.upstream_rate import Priority, Taken, UpstreamRateRepository

# At 1 request a minute the bucket holds 2 tokens and refills one a minute: a slow test run
# cannot add one.
RPM = 1


def bucket() -> UpstreamRateRepository:
    return UpstreamRateRepository(fakeredis.FakeAsyncRedis(decode_responses=True))


def counting_context(rpm: int, asks: list[int]) -> Context:
    """A context whose bucket (on fakeredis) notes how many tokens each ask wanted."""
    ctx = Context(Settings(upstream_rpm=rpm), Store("redis://unused"))
    rate = bucket()
    take = rate.take

    async def counted(priority: Priority, rpm: int, want: int = 1) -> Taken:
        asks.append(want)
        return await take(priority, rpm, want)

    rate.take = counted  # type: ignore[method-assign]
    ctx.store.upstream_rate = rate
    return ctx


def test_polls_leave_a_reserve_that_urgent_calls_may_take() -> None:
    async def run() -> list[Taken]:
        rate = bucket()
        return [
            await rate.take(Priority.POLL, RPM),
            await rate.take(Priority.POLL, RPM),  # would dig into the reserve
            await rate.take(Priority.URGENT, RPM),  # may
            await rate.take(Priority.URGENT, RPM),  # empty now
        ]

    first_poll, second_poll, urgent, empty = asyncio.run(run())
    assert first_poll == Taken(1, 0.0)
    assert second_poll.tokens == 0 and second_poll.wait > 0.0
    assert urgent == Taken(1, 0.0)
    assert empty.tokens == 0 and empty.wait > 30.0  # about a minute for the next token


def test_several_tokens_are_taken_at_once_up_to_what_is_there() -> None:
    # 600 a minute: a burst of 100 tokens, a reserve of 25 for urgent calls
    async def run() -> list[Taken]:
        rate = bucket()
        return [
            await rate.take(Priority.POLL, 600, want=32),
            await rate.take(Priority.POLL, 600, want=50),  # 43 above the reserve
            await rate.take(Priority.POLL, 600, want=32),  # none above it: wait for 10
            await rate.take(Priority.URGENT, 600, want=32),  # the reserve is theirs
        ]

    many, capped, refused, urgent = asyncio.run(run())
    assert many == Taken(32, 0.0)
    assert capped.tokens == 43
    assert refused.tokens == 0 and 0.9 <= refused.wait <= 1.1  # a second's worth, not 32
    assert urgent.tokens == 25


def test_a_pause_holds_every_priority_for_its_seconds() -> None:
    async def run() -> tuple[float, float]:
        rate = bucket()
        await rate.pause(30.0)
        return await rate.take(Priority.URGENT, 6000), await rate.take(Priority.POLL, 6000)

    urgent, poll = asyncio.run(run())
    assert urgent.tokens == poll.tokens == 0
    assert 20.0 < urgent.wait <= 30.0
    assert 20.0 < poll.wait <= 30.0


def test_a_shorter_pause_never_cuts_a_longer_one() -> None:
    async def run() -> float:
        rate = bucket()
        await rate.pause(30.0)
        await rate.pause(1.0)
        return (await rate.take(Priority.URGENT, 6000)).wait

    assert asyncio.run(run()) > 20.0


def test_callers_waiting_for_tokens_queue_and_are_served_by_few_asks() -> None:
    # 600 a minute: a burst of 100 tokens, then one every 100 ms. 120 callers at once: the first
    # to ask takes 32 for the queue, and so on: 100 tokens in 4 asks. The 20 left are told to
    # wait for 10 tokens (a second's worth) and take them together. Asking each for itself, every
    # caller would ask at least once (120 asks); asking together, every waiting caller would ask
    # again at each new token (about 230).
    callers = 120
    asks: list[int] = []

    async def run() -> None:
        ctx = counting_context(600, asks)

        async def call() -> None:
            await within_budget(ctx, Priority.URGENT, _answer)

        await asyncio.gather(*(call() for _ in range(callers)))

    asyncio.run(run())
    assert len(asks) <= 12


async def _answer() -> str:
    return "ok"


def test_calls_made_in_a_row_take_their_tokens_together() -> None:
    # a list walk expecting 5 pages asks once for 5 tokens, and its pages use them in turn
    asks: list[int] = []

    async def run() -> None:
        ctx = counting_context(6000, asks)
        for page in range(5):
            await within_budget(ctx, Priority.POLL, _answer, ahead=5 - page)

    asyncio.run(run())
    assert asks == [5]


def test_a_429_drops_the_tokens_taken_for_queued_callers() -> None:
    # Two callers queue: the first takes a token for each; its call is refused with a 429, so
    # the second must not use the token kept for it, and asks the (now paused) bucket itself.
    asks: list[int] = []

    async def run() -> list[str]:
        ctx = counting_context(6000, asks)

        async def refused() -> str:
            raise UpstreamRejected("Rate limit reached", status=429, extra={"retry_after": 0.2})

        first = asyncio.ensure_future(within_budget(ctx, Priority.POLL, refused))
        second = asyncio.ensure_future(within_budget(ctx, Priority.POLL, _answer))
        results = await asyncio.gather(first, second, return_exceptions=True)
        return [
            type(result).__name__ if isinstance(result, Exception) else result for result in results
        ]

    assert asyncio.run(run()) == ["UpstreamRejected", "ok"]
    assert asks[0] == 2  # the first asked for both
    assert len(asks) >= 3  # the second asked again: told to wait out the pause, then served


def test_a_429_pauses_the_shared_bucket_for_its_retry_after() -> None:
    server = EmbeddedRedis().start()

    async def refused() -> None:
        extra = {"retry_after": 40.0}
        raise UpstreamRejected("Rate limit reached", status=429, extra=extra)

    async def run() -> float:
        ctx = Context(Settings(upstream_rpm=6000), Store(server.url))
        with pytest.raises(UpstreamRejected):
            await within_budget(ctx, Priority.POLL, refused)
        taken = await ctx.store.upstream_rate.take(Priority.URGENT, 6000)
        await ctx.aclose()
        return taken.wait

    try:
        assert asyncio.run(run()) > 30.0
    finally:
        server.stop()
