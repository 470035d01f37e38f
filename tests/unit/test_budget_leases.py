"""Budget leases (fakeredis): the Lua that grants, settles, returns and reclaims them, and a
process's lease book, on a clock the tests move."""

from __future__ import annotations

import asyncio
import random

import fakeredis

from service.domain.budgets.limits import Scope
from service.operations.budgets import leases
from service.operations.budgets.leases import LeaseBook, Taken
from service.store.budgets import BudgetRepository, LeaseAsk, Leased, Refusal, Settlement

SCOPES = [Scope("org", 1_000_000), Scope("key:a", None)]
KEY = ("org_1", "p", tuple(SCOPES))


def repository() -> BudgetRepository:
    return BudgetRepository(fakeredis.FakeAsyncRedis(decode_responses=True))


def ask(lease_id: str, size: int, *, ttl_ms: int = 30_000, **closing: object) -> LeaseAsk:
    return LeaseAsk(lease_id, size, ttl_ms, **closing)  # type: ignore[arg-type]


async def held(budgets: BudgetRepository) -> tuple[int, int, int]:
    """The org scope's spent, reserved (leases included) and leased."""
    found = (await budgets.spending("org_1", "p"))["org"]
    return found.spent, found.reserved, found.leased


def test_a_lease_takes_a_sixteenth_of_what_is_left_at_most_and_twice_the_call_at_least() -> None:
    async def scenario() -> None:
        budgets = repository()
        granted = await budgets.reserve("org_1", "p", SCOPES, 1000, ask("bl_1", 10**9))
        assert granted == Leased(1_000_000 // 16)
        assert await held(budgets) == (0, 62_500, 62_500)
        # the size asked caps it; a lease that would not hold two calls is a plain reservation
        assert await budgets.reserve("org_1", "p", SCOPES, 10, ask("bl_2", 5000)) == Leased(5000)
        assert await budgets.reserve("org_1", "p", SCOPES, 3000, ask("bl_3", 5000)) is None
        assert await held(budgets) == (0, 62_500 + 5000 + 3000, 67_500)

    asyncio.run(scenario())


def test_settling_through_a_lease_shrinks_it_and_closing_gives_the_rest_back() -> None:
    async def scenario() -> None:
        budgets = repository()
        assert await budgets.reserve("org_1", "p", SCOPES, 100, ask("bl_1", 1000)) == Leased(1000)
        # a call of the open lease spent 70 of its 100: 70 leaves the lease, 30 stays in it
        await budgets.settle(Settlement("org_1", "p", SCOPES, 70, 70, [], "bl_1"))
        assert await held(budgets) == (70, 930, 930)
        # closed with 800 unused by the holder, one call of 100 still running
        assert await budgets.give_back("org_1", "p", "bl_1", 830, close=True, ttl_ms=30_000)
        assert await held(budgets) == (70, 100, 100)
        # the running call ends on a closed lease: all of its worst case leaves it
        await budgets.settle(Settlement("org_1", "p", SCOPES, 100, 40, [], "bl_1"))
        assert await held(budgets) == (110, 0, 0)
        leases_key = "tg:org:org_1:budget-leases:p"
        assert await budgets.redis.hget(leases_key, "bl_1") is None  # nothing left: gone
        assert not await budgets.give_back("org_1", "p", "bl_1", 0, close=False, ttl_ms=1)

    asyncio.run(scenario())


def test_a_lease_nobody_renews_goes_back_and_its_late_calls_count_as_spent_only() -> None:
    async def scenario() -> None:
        budgets = repository()
        assert await budgets.reserve("org_1", "p", SCOPES, 100, ask("bl_1", 1000, ttl_ms=1))
        await asyncio.sleep(0.01)  # past its expiry
        assert await budgets.reserve("org_1", "p", SCOPES, 5) is None  # releases it first
        assert await held(budgets) == (0, 5, 0)
        await budgets.settle(Settlement("org_1", "p", SCOPES, 100, 60, [], "bl_1"))
        assert await held(budgets) == (60, 5, 0)  # the plain reservation is untouched

    asyncio.run(scenario())


def test_a_call_that_does_not_fit_names_the_open_leases_and_stops_new_ones() -> None:
    async def scenario() -> None:
        budgets = repository()
        scopes = [Scope("org", 16_000)]
        assert await budgets.reserve("org_1", "p", scopes, 10, ask("bl_1", 10**6)) == Leased(1000)
        refusal = await budgets.reserve("org_1", "p", scopes, 15_500)
        assert refusal == Refusal("org", 0, 1000, 1000)
        # its holder gives back all but its running call's 10
        await budgets.give_back("org_1", "p", "bl_1", 990, close=True, ttl_ms=30_000)
        # the hold: a call that fits now gets no lease, however busy its key
        assert await budgets.reserve("org_1", "p", scopes, 10, ask("bl_2", 10**6)) is None
        # a closed lease's running call is a reservation like any other: nothing to recall
        assert await budgets.reserve("org_1", "p", scopes, 15_990) == Refusal("org", 0, 20, 0)

    asyncio.run(scenario())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def book_on(budgets: BudgetRepository, clock: Clock, size: int = 10**9) -> LeaseBook:
    return LeaseBook(budgets, size, live=lambda: True, clock=clock)


def test_a_busy_key_takes_from_its_lease_without_redis_and_idle_gives_it_back() -> None:
    async def scenario() -> None:
        budgets, clock = repository(), Clock()
        book = book_on(budgets, clock)
        assert await book.reserve(KEY, 100) == Taken()  # the first call: a plain reservation
        second = await book.reserve(KEY, 100)  # the key is busy: a lease comes with it
        assert isinstance(second, Taken) and second.lease_id is not None
        lease = book.by_id[second.lease_id]
        size = (1_000_000 - 100) // 16
        assert lease.free == size - 100
        before = await held(budgets)
        assert book.take(KEY, 100) == second.lease_id  # in memory
        assert await held(budgets) == before
        assert book.finish(second.lease_id, 100, 30) == 30  # the other 70 back to the lease
        assert lease.free == size - 200 + 70
        clock.now += leases.IDLE_SECONDS
        await book.tick()
        await asyncio.gather(*book.closing)
        assert book.take(KEY, 1) is None
        assert book.finish(second.lease_id, 100, 100) == 100  # ends on the closed lease
        await budgets.settle(Settlement("org_1", "p", SCOPES, 30, 30, [], second.lease_id))
        await budgets.settle(Settlement("org_1", "p", SCOPES, 100, 100, [], second.lease_id))
        await budgets.settle(Settlement("org_1", "p", SCOPES, 100, 100, []))  # the first call
        assert await held(budgets) == (230, 0, 0)
        await book.aclose()

    asyncio.run(scenario())


def test_a_recall_and_a_changed_org_give_leases_back() -> None:
    async def scenario() -> None:
        budgets, clock = repository(), Clock()
        book = book_on(budgets, clock)
        other = ("org_2", "p", tuple(SCOPES))
        for key in (KEY, KEY, other, other):
            assert isinstance(await book.reserve(key, 100), Taken)
        assert set(book.leases) == {KEY, other}
        book.recall("org_1")
        await asyncio.gather(*book.closing)
        assert set(book.leases) == {other}
        assert (await budgets.spending("org_1", "p"))["org"].leased == 100  # its running call
        book.recall(None)
        assert book.leases == {}
        await book.aclose()

    asyncio.run(scenario())


def test_processes_with_leases_never_spend_past_the_limit_nor_refuse_what_fits() -> None:
    """Three lease books on one Redis, calls of random cost settled at random, recalls as the
    charges module makes them: the limit holds at every step, and a call is refused only when
    the budget, every lease given back, really cannot hold it."""

    async def scenario() -> None:
        budgets, clock, rng = repository(), Clock(), random.Random(7)
        limit = 200_000
        scopes = [Scope("org", limit)]
        key = ("org_1", "p", tuple(scopes))
        books = [book_on(budgets, clock, size=40_000) for _ in range(3)]
        running: list[tuple[LeaseBook, int, str | None]] = []
        spent = refused = 0
        for _ in range(1500):
            clock.now += rng.choice((0.01, 0.1, 0.5))
            if running and rng.random() < 0.45:
                book, amount, lease_id = running.pop(rng.randrange(len(running)))
                cost = rng.randint(0, amount)
                taken = book.finish(lease_id, amount, cost) if lease_id else amount
                await budgets.settle(Settlement("org_1", "p", scopes, taken, cost, [], lease_id))
                spent += cost
                continue
            book = rng.choices(books, weights=(1, 10, 10))[0]  # one rarely: its lease idles
            amount = rng.randint(1, 2000)
            answer: Taken | Refusal = Taken(book.take(key, amount))
            if answer.lease_id is None:
                answer = await book.reserve(key, amount)
            if isinstance(answer, Refusal) and answer.leased > 0:
                for each in books:  # the org's notice reaches every process
                    each.recall("org_1")
                    await asyncio.gather(*each.closing)
                answer = await book.reserve(key, amount)
            found = (await budgets.spending("org_1", "p"))["org"]
            assert found.spent + found.reserved <= limit
            assert found.spent == spent
            if isinstance(answer, Refusal):
                refused += 1
                in_flight = sum(each for _, each, _ in running)
                assert found.spent + in_flight + amount > limit  # truly no room
                continue
            running.append((book, amount, answer.lease_id))
        assert refused > 0 and spent > limit // 2
        for book in books:
            await book.aclose()

    asyncio.run(scenario())


def test_a_lease_redis_cannot_renew_stops_funding_calls_at_its_deadline() -> None:
    async def scenario() -> None:
        budgets, clock = repository(), Clock()
        book = book_on(budgets, clock)
        await book.reserve(KEY, 100)
        granted = await book.reserve(KEY, 100)
        assert isinstance(granted, Taken) and granted.lease_id is not None
        lease = book.by_id[granted.lease_id]
        deadline = lease.deadline

        async def unreachable(*args: object, **kwargs: object) -> bool:
            raise ConnectionError("Redis is away")

        budgets.give_back = unreachable  # type: ignore[method-assign]
        for _ in range(2):  # in use all along: due for renewal, not idle
            clock.now += leases.RENEW_SECONDS / 2 + 0.5
            assert book.take(KEY, 1) is not None
            await book.tick()
        assert clock.now - lease.used_at < leases.IDLE_SECONDS
        assert lease.deadline == deadline  # the renewal failed: not extended
        clock.now = deadline
        assert book.take(KEY, 1) is None  # its Redis record may be about to expire
        book.ticker and book.ticker.cancel()

    asyncio.run(scenario())
