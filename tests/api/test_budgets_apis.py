"""Budgets over every priced API, not chat alone: embeddings and Responses-only models reserve
their own worst case at their own rates (the input's bytes and token ids), a response its
model's context window for output without a cap and for the prompt of a call chained to a
stored response; a budget that cannot hold it refuses before the upstream, and what the
upstream billed is what is spent. A background response keeps its create's reservation until
the call that sees it end counts its usage. (A Responses-only model's rates:
`tests/unit/test_budgets`.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.domain.budgets.costs import inference_worst_case
from service.domain.pricing import inference_cost, load_price_table
from tests.api.proxy_helpers import Proxy, eventually, proxy, upstream

__all__ = ["proxy", "upstream"]

PRICES = load_price_table()
EMBED = "text-embedding-3-large"
MODEL = "gpt-4o-mini"
TEXT = "the quick brown fox jumps over the lazy dog " * 200  # 9,000 bytes


def budget_of(http: httpx.Client) -> dict[str, Any]:
    response = http.get("/v1/budget")
    assert response.status_code == 200, response.text
    return next(scope for scope in response.json()["scopes"] if scope["scope"] == "org")


def settled(http: httpx.Client) -> dict[str, Any]:
    return eventually(lambda: (found := budget_of(http))["reserved_usd"] == 0 and found)


def test_embeddings_reserve_their_input_at_the_models_rate(upstream: Proxy) -> None:
    worst = inference_worst_case(EMBED, [TEXT], 0, 1, PRICES) / 1e9
    assert worst > 0.001  # 9,000 bytes at $0.13 per 1M tokens
    _, key = upstream.org({"budgets": {"monthly_usd": worst * 0.9}}, role="admin")
    with upstream.http(key) as http:
        refused = http.post("/v1/embeddings", json={"model": EMBED, "input": TEXT})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "insufficient_quota"
        assert upstream.upstream_requests("/v1/embeddings") == []
        ids = http.post("/v1/embeddings", json={"model": EMBED, "input": [[7] * 10_000]})
        assert ids.status_code == 429  # token ids count one token each
        small = http.post("/v1/embeddings", json={"model": EMBED, "input": TEXT[:2000]})
        assert small.status_code == 200, small.text
        billed = inference_cost(EMBED, small.json()["usage"]["prompt_tokens"], 0, PRICES)
        org = settled(http)
    assert billed > 0
    assert org["spent_usd"] == pytest.approx(billed, abs=1e-9)
    assert len(upstream.upstream_requests("/v1/embeddings")) == 1


def test_a_response_without_an_output_cap_or_chained_reserves_the_context_window(
    upstream: Proxy,
) -> None:
    uncapped = inference_worst_case(MODEL, ["hi"], None, 1, PRICES) / 1e9
    capped = inference_worst_case(MODEL, ["hi"], 50, 1, PRICES) / 1e9
    chained = inference_worst_case(MODEL, ["hi"], 50, 1, PRICES, unseen_context=True) / 1e9
    limit = 2 * capped + chained / 2  # two capped calls fit; no uncapped or chained one does
    assert uncapped > limit and chained > limit
    policy = {"force_store_false": False, "budgets": {"monthly_usd": limit}}
    _, key = upstream.org(policy, role="admin")
    with upstream.http(key) as http:
        refused = http.post("/v1/responses", json={"model": MODEL, "input": "hi"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "insufficient_quota"
        assert upstream.upstream_requests("/v1/responses") == []
        body = {"model": MODEL, "input": "hi", "max_output_tokens": 50}
        first = http.post("/v1/responses", json=body)
        assert first.status_code == 200, first.text
        chain = {**body, "previous_response_id": first.json()["id"]}
        assert http.post("/v1/responses", json=chain).status_code == 429
        assert len(upstream.upstream_requests("/v1/responses")) == 1
        usage = first.json()["usage"]
        billed = inference_cost(MODEL, usage["input_tokens"], usage["output_tokens"], PRICES)
        org = settled(http)
    assert org["spent_usd"] == pytest.approx(billed, abs=1e-9)


def test_a_background_response_holds_its_reservation_until_its_usage_is_counted(
    upstream: Proxy,
) -> None:
    capped = inference_worst_case(MODEL, ["slowly"], 50, 1, PRICES) / 1e9
    policy = {"force_store_false": False, "budgets": {"monthly_usd": capped * 1.5}}
    _, key = upstream.org(policy, role="admin")
    body = {"model": MODEL, "input": "slowly", "max_output_tokens": 50, "background": True}
    with upstream.http(key) as http:
        made = http.post("/v1/responses", json=body)
        assert made.status_code == 200, made.text
        assert made.json()["status"] == "queued"
        held = budget_of(http)
        assert held["reserved_usd"] == pytest.approx(capped, abs=1e-9)
        assert http.post("/v1/responses", json=body).status_code == 429  # both cannot fit
        path = f"/v1/responses/{made.json()['id']}"
        done = eventually(
            lambda: (r := http.get(path).json())["status"] == "completed" and r, timeout=30
        )
        assert http.get(path).status_code == 200  # a second look counts nothing more
        usage = done["usage"]
        billed = inference_cost(MODEL, usage["input_tokens"], usage["output_tokens"], PRICES)
        org = settled(http)
        assert org["spent_usd"] == pytest.approx(billed, abs=1e-9)
        cancelled = http.post("/v1/responses", json=body)
        assert cancelled.status_code == 200, cancelled.text
        stopped = http.post(f"/v1/responses/{cancelled.json()['id']}/cancel")
        assert stopped.status_code == 200, stopped.text
        after = settled(http)  # a response cancelled gives back what it did not use
    stopped_usage = stopped.json().get("usage") or {"input_tokens": 0, "output_tokens": 0}
    cost = inference_cost(MODEL, stopped_usage["input_tokens"], stopped_usage["output_tokens"])
    assert after["spent_usd"] == pytest.approx(billed + cost, abs=1e-9)
