"""Per-key rate limits from the org's policy: OpenAI's headers, 429 with Retry-After, tokens
reserved before the call and corrected with the upstream's usage after it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.api.proxy_helpers import Proxy, eventually, proxy, upstream

__all__ = ["proxy", "upstream"]

PATH = "/v1/chat/completions"


def ask(http: httpx.Client, **fields: Any) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **fields}
    return http.post(PATH, json=body)


def test_requests_per_minute_answer_429_with_openais_headers(upstream: Proxy) -> None:
    org_id, key = upstream.org({"rate_limits": {"requests_per_minute": 2}}, role="admin")
    with upstream.http(key) as http:
        started = time.monotonic()
        first, second, third = ask(http), ask(http), ask(http)
        elapsed = time.monotonic() - started  # the bucket refills meanwhile: one per 30 s
        assert [first.status_code, second.status_code, third.status_code] == [200, 200, 429]
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert second.headers["x-ratelimit-remaining-requests"] == "0"
        assert third.headers["x-ratelimit-remaining-requests"] == "0"
        assert 29 - elapsed <= int(third.headers["retry-after"]) <= 30  # one back in 60 s / 2
        assert third.headers["x-ratelimit-reset-requests"] == third.headers["retry-after"] + "s"
        assert third.json()["error"]["type"] == "rate_limit_error"
        records = http.get("/v1/audit", params={"action": "chat.completions.create"}).json()
    assert len(upstream.upstream_requests()) == 2
    assert records["data"][0]["outcome"] == "denied" and records["data"][0]["status"] == 429
    _, other_key = upstream.gateway.create_key(org_id, "inference")
    with upstream.http(other_key) as http:
        assert ask(http).status_code == 200  # limits are per key


def test_concurrent_calls_never_exceed_the_limit(upstream: Proxy) -> None:
    _, key = upstream.org({"rate_limits": {"requests_per_minute": 10}})
    with upstream.http(key) as http, ThreadPoolExecutor(8) as pool:
        started = time.monotonic()
        statuses = list(pool.map(lambda _: ask(http).status_code, range(24)))
        refilled = int((time.monotonic() - started) / 6)  # one request back every 6 s
    allowed = statuses.count(200)
    assert 10 <= allowed <= 10 + refilled
    assert statuses.count(429) == 24 - allowed


def test_tokens_are_reserved_then_corrected_with_the_reported_usage(upstream: Proxy) -> None:
    _, key = upstream.org({"rate_limits": {"tokens_per_minute": 1000}})
    with upstream.http(key) as http:
        big = ask(http, max_tokens=900)
        assert big.status_code == 200
        assert int(big.headers["x-ratelimit-remaining-tokens"]) < 100

        def remaining_after_small_call() -> bool:
            small = ask(http, max_tokens=1)
            return int(small.headers["x-ratelimit-remaining-tokens"]) > 900

        eventually(remaining_after_small_call, timeout=10)  # the natural refill alone is < 200
        too_big = ask(http, max_tokens=5000)
    assert too_big.status_code == 429
    assert too_big.headers["x-ratelimit-limit-tokens"] == "1000"
    assert "tokens" in too_big.json()["error"]["message"]
    assert 1 <= int(too_big.headers["retry-after"]) <= 10
    assert too_big.headers["x-ratelimit-reset-tokens"] == too_big.headers["retry-after"] + "s"
