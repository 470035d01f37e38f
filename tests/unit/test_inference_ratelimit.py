"""Rate limits: the headers callers read, the estimate, and the buckets' Lua (on fakeredis)."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from service.domain.inference.ratelimit import (
    Bucket,
    RateDecision,
    decision,
    estimate_tokens,
    format_reset,
)
from service.domain.tenancy.policy import RateLimits
from service.store.inference.ratelimit import RateLimitRepository


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (0.9994, "999ms"), (1, "1s"), (1.5, "1.5s"), (59.25, "59.25s"), (360, "6m0s")],
)
def test_resets_read_like_openais(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text


def test_headers_name_each_limited_bucket() -> None:
    decision = RateDecision(True, 0, Bucket(60, 59, 1.0), None)
    assert decision.headers() == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
    }
    assert RateDecision(False, 2, None, Bucket(100, -20, 72)).headers() == {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m12s",
    }


def test_a_refusal_waits_whole_seconds_and_its_reset_says_the_same() -> None:
    limits = RateLimits(requests_per_minute=2, tokens_per_minute=1000)
    by_requests = decision(limits, 0, [0, 59_000, 900, 6_000], 29_412)
    assert by_requests.retry_after == 30
    assert by_requests.headers()["x-ratelimit-reset-requests"] == "30s"
    assert by_requests.headers()["x-ratelimit-reset-tokens"] == "6s"
    by_tokens = decision(limits, 0, [1, 30_000, 100, 54_000], 4_100)
    assert by_tokens.retry_after == 5
    assert by_tokens.headers()["x-ratelimit-reset-tokens"] == "5s"
    assert decision(limits, 0, [0, 100, 900, 0], 20).retry_after == 1


def test_the_estimate_counts_prompt_and_allowed_output() -> None:
    assert estimate_tokens(["x" * 400], 100, 2) == 100 + 4 + 200
    assert estimate_tokens([], None, 1) == 256


def admits(limits: RateLimits, costs: list[int]) -> list[RateDecision]:
    async def run() -> list[RateDecision]:
        redis = fakeredis.FakeAsyncRedis(decode_responses=True)
        repository = RateLimitRepository(redis)
        return [await repository.admit("key", limits, cost) for cost in costs]

    return asyncio.run(run())


def test_requests_per_minute_admit_up_to_the_limit() -> None:
    decisions = admits(RateLimits(requests_per_minute=3), [0, 0, 0, 0])
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.requests.remaining for d in decisions if d.requests] == [2, 1, 0, 0]
    assert 19 <= decisions[-1].retry_after <= 20.1  # one request refills in 60 s / 3


def test_tokens_per_minute_charge_the_estimate() -> None:
    decisions = admits(RateLimits(tokens_per_minute=1000), [600, 300, 200])
    assert [d.allowed for d in decisions] == [True, True, False]
    tokens = decisions[1].tokens
    assert tokens is not None and tokens.limit == 1000
    # 900 charged; the bucket refills 1000 tokens a minute (about 17 a second) between calls,
    # so a slow machine may see a few more than 100 left, never fewer.
    assert 100 <= tokens.remaining <= 117
    assert tokens.reset_seconds == pytest.approx((1000 - tokens.remaining) * 0.06, abs=0.1)
    # The third call needs 200 and finds 100 plus what refilled: about 6 s, less if time passed.
    assert 4.8 <= decisions[2].retry_after <= 6.0


def test_a_call_larger_than_the_bucket_waits_for_a_full_one() -> None:
    decisions = admits(RateLimits(tokens_per_minute=100), [5000, 1])
    assert [d.allowed for d in decisions] == [True, False]


def test_a_denied_call_charges_nothing() -> None:
    decisions = admits(RateLimits(requests_per_minute=10, tokens_per_minute=100), [90, 50, 10])
    assert [d.allowed for d in decisions] == [True, False, True]
    assert decisions[2].requests.remaining == 8  # type: ignore[union-attr]


def test_adjust_gives_back_what_was_not_used() -> None:
    async def run() -> list[bool]:
        repository = RateLimitRepository(fakeredis.FakeAsyncRedis(decode_responses=True))
        limits = RateLimits(tokens_per_minute=100)
        first = await repository.admit("key", limits, 100)
        await repository.adjust("key", 100, 90)
        second = await repository.admit("key", limits, 80)
        return [first.allowed, second.allowed]

    assert asyncio.run(run()) == [True, True]
