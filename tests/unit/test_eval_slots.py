"""An org's eval slots (on fakeredis): at most `limit` holders, a stale holder's slot freed."""

from __future__ import annotations

import asyncio

import fakeredis

from service.store.evals import RunRepository


def test_an_orgs_slots_are_bounded_and_a_dead_holders_slot_comes_back() -> None:
    async def scenario() -> None:
        slots = RunRepository(fakeredis.FakeAsyncRedis(decode_responses=True))
        assert await slots.take_slot("org_a", "r:0", 2, now=100, stale_before=0)
        assert await slots.take_slot("org_a", "r:1", 2, now=101, stale_before=0)
        assert not await slots.take_slot("org_a", "r:2", 2, now=102, stale_before=0)
        assert await slots.take_slot("org_b", "r:9", 2, now=102, stale_before=0)  # per org
        await slots.give_slot("org_a", "r:1")
        assert await slots.take_slot("org_a", "r:2", 2, now=103, stale_before=0)
        assert not await slots.take_slot("org_a", "r:3", 2, now=104, stale_before=99)
        assert await slots.take_slot("org_a", "r:3", 2, now=200, stale_before=100.5)  # r:0 died

    asyncio.run(scenario())
