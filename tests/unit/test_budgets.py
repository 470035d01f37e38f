"""Budgets: the policy field, periods, scopes, worst cases, and the counters' Lua (fakeredis)."""

from __future__ import annotations

import asyncio
import datetime as dt
import math

import fakeredis
import pytest

from service.domain.budgets.costs import inference_worst_case, prompt_bound, training_worst_case
from service.domain.budgets.limits import Scope, period_of, report_scopes, scopes_for, to_nanos
from service.domain.pricing import inference_cost, load_price_table
from service.domain.tenancy.policy import Budgets, Policy
from service.errors import InvalidRequest
from service.store.budgets import SETTLE, BudgetRepository, Settlement

PRICES = load_price_table()
MODEL = "gpt-4o-mini-2024-07-18"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_policy_takes_budgets_and_refuses_bad_ones() -> None:
    policy = Policy.model_validate(
        {"budgets": {"monthly_usd": 10, "per_key": {"key_a": 1}, "per_kind": {"training": 5}}}
    )
    assert policy.budgets is not None
    assert policy.budgets.alert_thresholds == [0.5, 0.8, 1.0]
    assert policy.budgets.reset_day == 1
    assert Policy().budgets is None
    for bad in (
        {"monthly_usd": -1},
        {"reset_day": 29},
        {"alert_thresholds": [1.5]},
        {"per_key": {"key_a": -2}},
        {"per_kind": {"hardware": 1}},
        {"montly_usd": 1},
    ):
        with pytest.raises(ValueError):
            Policy.model_validate({"budgets": bad})


def test_policy_patch_refuses_bad_budgets_as_400() -> None:
    from service.domain.tenancy.policy import apply_policy_patch

    with pytest.raises(InvalidRequest):
        apply_policy_patch(Policy(), {"budgets": {"reset_day": 0}})


@pytest.mark.parametrize(
    ("now", "reset_day", "start", "end"),
    [
        ("2026-03-15T10:00:00", 1, "2026-03-01", "2026-04-01"),
        ("2026-03-01T00:00:00", 1, "2026-03-01", "2026-04-01"),
        ("2026-02-28T23:59:59", 1, "2026-02-01", "2026-03-01"),
        ("2026-12-31T23:00:00", 1, "2026-12-01", "2027-01-01"),
        ("2026-03-10T00:00:00", 15, "2026-02-15", "2026-03-15"),
        ("2026-03-15T00:00:00", 15, "2026-03-15", "2026-04-15"),
        ("2026-01-03T00:00:00", 5, "2025-12-05", "2026-01-05"),
        ("2026-12-20T00:00:00", 5, "2026-12-05", "2027-01-05"),
    ],
)
def test_periods_start_on_the_reset_day(now: str, reset_day: int, start: str, end: str) -> None:
    period = period_of(Budgets(reset_day=reset_day), at(now))
    assert (period.start.date().isoformat(), period.end.date().isoformat()) == (start, end)
    assert period.name == start


def test_a_call_is_charged_to_its_org_kind_and_key() -> None:
    budgets = Budgets(monthly_usd=2, per_key={"key_a": 0.5}, per_kind={"inference": 1})
    assert scopes_for(budgets, "key_a", "inference") == [
        Scope("org", to_nanos(2)),
        Scope("kind:inference", to_nanos(1)),
        Scope("key:key_a", to_nanos(0.5)),
    ]
    assert scopes_for(budgets, "key_b", "training") == [
        Scope("org", to_nanos(2)),
        Scope("kind:training", None),
        Scope("key:key_b", None),
    ]
    assert [scope.name for scope in report_scopes(budgets)] == [
        "org",
        "kind:inference",
        "kind:training",
        "key:key_a",
    ]


def test_worst_cases_bound_prompt_output_and_training() -> None:
    assert prompt_bound(["héllo"]) == 6 + 4 + 3  # bytes, not characters
    worst = inference_worst_case(MODEL, ["hi"], 100, 3, PRICES)
    assert worst >= inference_cost(MODEL, prompt_bound(["hi"]), 300, PRICES) * 1e9
    unbounded = inference_worst_case(MODEL, ["hi"], None, 1, PRICES)
    window = PRICES.price_of(MODEL).context_window
    assert unbounded >= inference_cost(MODEL, 0, window, PRICES) * 1e9
    assert inference_worst_case("no-such-model", ["hi"], 10, 1, PRICES) == 0
    assert training_worst_case(MODEL, 1_000_000, PRICES) == to_nanos(
        PRICES.price_of(MODEL).training_per_1m or 0
    )


def test_served_models_reserve_at_their_own_rates() -> None:
    embed = inference_worst_case("text-embedding-3-large", ["x" * 1000], 0, 1, PRICES)
    assert embed == math.ceil(prompt_bound(["x" * 1000]) * 0.13 * 1000)  # $0.13 per 1M
    as_ids = inference_worst_case("text-embedding-3-large", [], 0, 1, PRICES, token_ids=5000)
    assert as_ids >= 5000 * 0.13 * 1000  # token ids the input sends count one each
    uncapped = inference_worst_case("gpt-5", ["hi"], None, 1, PRICES)
    assert uncapped >= inference_cost("gpt-5", 0, 400_000, PRICES) * 1e9
    chained = inference_worst_case("gpt-5", ["hi"], 10, 1, PRICES, unseen_context=True)
    assert chained >= inference_cost("gpt-5", 400_000, 10, PRICES) * 1e9
    assert inference_worst_case("omni-moderation-latest", ["hi"], 0, 1, PRICES) == 0  # free


def test_a_served_model_with_priced_output_needs_a_context_window() -> None:
    from service.domain.pricing import ServingPrice

    with pytest.raises(ValueError, match="context_window"):
        ServingPrice(api="responses", input_per_1m=1, output_per_1m=2)
    assert ServingPrice(api="embeddings", input_per_1m=1).context_window is None


def repository() -> BudgetRepository:
    return BudgetRepository(fakeredis.FakeAsyncRedis(decode_responses=True))


def test_reserve_checks_every_scope_and_charges_all_or_none() -> None:
    async def scenario() -> None:
        budgets = repository()
        scopes = [Scope("org", 100), Scope("key:a", 30)]
        assert await budgets.reserve("org_1", "p", scopes, 20) is None
        refusal = await budgets.reserve("org_1", "p", scopes, 20)
        assert refusal is not None and refusal.scope == "key:a" and refusal.reserved == 20
        spending = await budgets.spending("org_1", "p")
        assert (spending["org"].reserved, spending["key:a"].reserved) == (20, 20)
        assert await budgets.reserve("org_1", "p", [Scope("org", 100), Scope("key:b", 30)], 31)
        assert (await budgets.spending("org_1", "p"))["org"].reserved == 20  # nothing charged

    asyncio.run(scenario())


def test_settle_turns_reservations_into_spending_and_release_gives_back() -> None:
    async def scenario() -> None:
        budgets = repository()
        scopes = [Scope("org", 100)]
        await budgets.reserve("org_1", "p", scopes, 60)
        await budgets.settle(Settlement("org_1", "p", scopes, 60, 25, []))
        await budgets.reserve("org_1", "p", scopes, 60)
        await budgets.settle(Settlement("org_1", "p", scopes, 60, 0, []))  # released
        spending = (await budgets.spending("org_1", "p"))["org"]
        assert (spending.spent, spending.reserved) == (25, 0)
        assert await budgets.reserve("org_1", "p", scopes, 75) is None
        assert await budgets.reserve("org_1", "p", scopes, 0) is not None  # nothing left

    asyncio.run(scenario())


def test_an_unlimited_scope_is_counted_not_checked() -> None:
    async def scenario() -> None:
        budgets = repository()
        scopes = [Scope("org", None)]
        for _ in range(3):
            assert await budgets.reserve("org_1", "p", scopes, 10**12) is None
        assert (await budgets.spending("org_1", "p"))["org"].reserved == 3 * 10**12

    asyncio.run(scenario())


def test_alerts_are_claimed_once_per_threshold_and_period() -> None:
    async def scenario() -> None:
        budgets = repository()
        scopes, marks = [Scope("org", 100), Scope("key:a", None)], [0.5, 0.8, 1.0]
        claimed = []
        for spent in (30, 30, 30, 30, 30):
            await budgets.reserve("org_1", "p", scopes, 0)
            claimed += await budgets.settle(Settlement("org_1", "p", scopes, 0, spent, marks))
        assert claimed == [("org", 0.5), ("org", 0.8), ("org", 1.0)]
        await budgets.settle(Settlement("org_1", "next", scopes, 0, 60, marks))
        assert await budgets.settle(Settlement("org_1", "next", scopes, 0, 0, marks)) == []

    asyncio.run(scenario())


def test_concurrent_reservations_never_overbook() -> None:
    async def scenario() -> None:
        budgets = repository()
        scopes = [Scope("org", 1000)]
        results = await asyncio.gather(
            *(budgets.reserve("org_1", "p", scopes, 70) for _ in range(40))
        )
        assert sum(result is None for result in results) == 1000 // 70

    asyncio.run(scenario())


def test_settlements_ride_in_the_usage_pipeline_even_after_redis_lost_the_script() -> None:
    from service.store.inference.ratelimit import RateLimitRepository
    from service.store.inference.usage import UsageRepository

    async def scenario() -> None:
        redis = fakeredis.FakeAsyncRedis(decode_responses=True)
        budgets = BudgetRepository(redis)
        usage = UsageRepository(redis, RateLimitRepository(redis), budgets)
        scopes, marks = [Scope("org", 100)], [0.5]
        await budgets.reserve("org_1", "p", scopes, 60)
        await budgets.reserve("org_1", "p", scopes, 40)
        await redis.script_load(SETTLE)  # as a process that settled before has it
        first = Settlement("org_1", "p", scopes, 60, 55, marks)
        assert await usage.record([], [], [first]) == [[("org", 0.5)]]
        await redis.script_flush()  # a restarted Redis: EVALSHA answers NOSCRIPT
        second = Settlement("org_1", "p", scopes, 40, 10, marks)
        assert await usage.record([], [], [second]) == [[]]
        spending = (await budgets.spending("org_1", "p"))["org"]
        assert (spending.spent, spending.reserved) == (65, 0)

    asyncio.run(scenario())
