"""Budgets over the proxy: a call reserves its worst case before it leaves and settles with the
upstream's usage; over budget is OpenAI's 429 `insufficient_quota`; `GET /v1/budget` and the
operator's views show limits, spending and reservations; alerts go out once per period."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from service.domain.budgets.costs import inference_worst_case
from service.domain.pricing import inference_cost, load_price_table
from tests.api.proxy_helpers import BASE_MODEL, Proxy, eventually, proxy, upstream

__all__ = ["proxy", "upstream"]

PATH = "/v1/chat/completions"
PRICES = load_price_table()
MAX_TOKENS = 2000
QUESTION = "hi"


def ask(http: httpx.Client, **fields: Any) -> httpx.Response:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": MAX_TOKENS,
        **fields,
    }
    return http.post(PATH, json=body)


def worst_case(max_tokens: int = MAX_TOKENS) -> float:
    return inference_worst_case(BASE_MODEL, [QUESTION], max_tokens, 1, PRICES) / 1e9


def billed(reply: dict[str, Any]) -> float:
    usage = reply["usage"]
    return inference_cost(BASE_MODEL, usage["prompt_tokens"], usage["completion_tokens"], PRICES)


def budget(http: httpx.Client) -> dict[str, dict[str, Any]]:
    response = http.get("/v1/budget")
    assert response.status_code == 200, response.text
    return {scope["scope"]: scope for scope in response.json()["scopes"]}


def test_an_exhausted_budget_refuses_as_openai_does_before_the_upstream(upstream: Proxy) -> None:
    _, key = upstream.org({"budgets": {"monthly_usd": 0}}, role="admin")
    with upstream.http(key) as http:
        refused = ask(http)
        records = http.get("/v1/audit", params={"action": "chat.completions.create"}).json()
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "insufficient_quota"
    assert refused.json()["error"]["code"] == "insufficient_quota"
    assert refused.headers["x-should-retry"] == "false"
    assert upstream.upstream_requests() == []
    assert records["data"][0]["outcome"] == "denied" and records["data"][0]["status"] == 429
    sdk = upstream.sdk(key).with_options(max_retries=2)
    with sdk, pytest.raises(openai.RateLimitError) as raised:  # as OpenAI's own answer
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=5
        )
    assert raised.value.code == "insufficient_quota"
    assert len(upstream.upstream_requests()) == 0  # and does not retry it


def test_spending_is_what_the_upstream_billed_and_reservations_settle(upstream: Proxy) -> None:
    _, key = upstream.org({"budgets": {"monthly_usd": 1}})
    with upstream.http(key) as http:
        replies = [ask(http).json() for _ in range(3)]
        spent = sum(billed(reply) for reply in replies)
        org = eventually(lambda: (s := budget(http)["org"])["spent_usd"] > 0 and s)
        org = eventually(lambda: (s := budget(http)["org"])["spent_usd"] >= spent * 0.999 and s)
    assert org["spent_usd"] == pytest.approx(spent, abs=1e-9)
    assert org["reserved_usd"] == 0
    # a lease the gateway may hold for the key's next calls is not spendable elsewhere
    held = org["spent_usd"] + org["leased_usd"]
    assert org["remaining_usd"] == pytest.approx(1 - held, abs=1e-9)
    with upstream.http(key) as http:  # given back once idle
        org = eventually(lambda: (s := budget(http)["org"])["leased_usd"] == 0 and s, timeout=60)
    assert org["remaining_usd"] == pytest.approx(1 - spent, abs=1e-9)
    with upstream.http(key) as http:
        usage = http.get("/v1/usage").json()
    assert usage["budget_spent"] == pytest.approx(spent, abs=1e-9)
    assert usage["budget_remaining"] == pytest.approx(1 - spent, abs=1e-9)


def test_a_call_the_budget_cannot_cover_is_refused_and_a_raise_applies_at_once(
    upstream: Proxy,
) -> None:
    limit = worst_case() * 1.5  # room for one call's worst case, not two
    org_id, key = upstream.org({"budgets": {"monthly_usd": limit}})
    with upstream.http(key) as http:
        assert ask(http).status_code == 200
        assert ask(http, max_tokens=MAX_TOKENS * 2).status_code == 429  # its worst case won't fit
        assert ask(http, max_tokens=10).status_code == 200  # a smaller call still does
        raised = upstream.gateway.admin.patch(
            f"/admin/orgs/{org_id}/policy", json={"budgets": {"monthly_usd": 10}}
        )
        assert raised.status_code == 200
        assert ask(http, max_tokens=MAX_TOKENS * 2).status_code == 200


def test_a_failed_call_gives_its_reservation_back(upstream: Proxy) -> None:
    _, key = upstream.org({"budgets": {"monthly_usd": worst_case() * 1.5}})
    upstream.add_fault(kind="500", path_prefix=PATH)
    with upstream.http(key) as http:
        assert ask(http).status_code >= 500
        scopes = eventually(lambda: (s := budget(http))["org"]["reserved_usd"] == 0 and s)
        assert scopes["org"]["spent_usd"] == 0
        assert ask(http).status_code == 200


def test_a_stream_over_budget_is_refused_before_it_leaves(upstream: Proxy) -> None:
    _, key = upstream.org({"budgets": {"monthly_usd": 0}})
    with upstream.http(key) as http:
        refused = ask(http, stream=True)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "insufficient_quota"
    assert upstream.upstream_requests() == []


def test_a_call_the_policy_blocks_after_its_reservation_went_out_gives_it_back(
    upstream: Proxy,
) -> None:
    # the reservation travels while the PII scan runs: a blocked call must release it
    _, key = upstream.org({"pii": "block", "budgets": {"monthly_usd": worst_case() * 1.5}})
    with upstream.http(key) as http:
        blocked = ask(http, messages=[{"role": "user", "content": "mail ann@example.com"}])
        assert blocked.status_code == 400, blocked.text
        scopes = eventually(lambda: (s := budget(http))["org"]["reserved_usd"] == 0 and s)
        assert scopes["org"]["spent_usd"] == 0
        assert upstream.upstream_requests() == []
        assert ask(http).status_code == 200  # the one worst case the budget holds is free


def test_per_key_and_per_kind_limits(upstream: Proxy) -> None:
    org_id, key = upstream.org({})
    key_id, other = upstream.gateway.create_key(org_id, "member")
    upstream.gateway.admin.patch(
        f"/admin/orgs/{org_id}/policy",
        json={"budgets": {"per_key": {key_id: 0}, "per_kind": {"inference": worst_case() * 3}}},
    )
    with upstream.http(other) as limited, upstream.http(key) as free:
        refused = ask(limited)
        assert refused.status_code == 429 and "key:" in refused.json()["error"]["message"]
        statuses = [ask(free).status_code for _ in range(3)]
        assert statuses[:2] == [200, 200]
        scopes = budget(free)
    assert scopes[f"key:{key_id}"]["limit_usd"] == 0
    assert scopes["kind:inference"]["limit_usd"] == pytest.approx(worst_case() * 3)
    assert scopes["org"]["limit_usd"] is None


def test_concurrent_clients_never_overspend(upstream: Proxy) -> None:
    """16 clients call until refused: spending stays within the limit, equals what the upstream
    billed, each client is refused once, and a refusal only comes when the budget could not
    hold another worst case beside the other clients' reservations."""
    limit, clients = 0.05, 16
    _, key = upstream.org({"budgets": {"monthly_usd": limit}})

    def until_refused(_: int) -> list[dict[str, Any]]:
        replies = []
        with upstream.http(key) as http:
            while (response := ask(http)).status_code == 200:
                replies.append(response.json())
            assert response.status_code == 429, response.text
        return replies

    with ThreadPoolExecutor(clients) as pool:
        answered = [
            reply for replies in pool.map(until_refused, range(clients)) for reply in replies
        ]
    spent = sum(billed(reply) for reply in answered)
    with upstream.http(key) as http:
        org = eventually(lambda: (s := budget(http)["org"])["reserved_usd"] == 0 and s)
    assert org["spent_usd"] == pytest.approx(spent, abs=1e-9)
    assert spent <= limit
    assert spent + clients * worst_case() > limit  # every refusal was the arithmetic's
    assert len(upstream.upstream_requests()) == len(answered)


def test_the_budget_report_and_the_operators_views(upstream: Proxy) -> None:
    org_id, key = upstream.org({"budgets": {"monthly_usd": 5, "reset_day": 3}}, role="inference")
    with upstream.http(key) as http:
        assert http.get("/v1/budget").status_code == 403  # inference keys don't see spending
    _, admin_key = upstream.gateway.create_key(org_id, "admin")
    with upstream.http(admin_key) as http:
        report = http.get("/v1/budget").json()
    assert report["period_start"][8:10] == "03" and report["resets_at"][8:10] == "03"
    assert report["currency"] == "USD"
    admin = upstream.gateway.admin
    assert admin.get(f"/admin/orgs/{org_id}/budget").json() == report
    assert org_id in [entry["org_id"] for entry in admin.get("/admin/budgets").json()["data"]]
    assert admin.get("/admin/orgs/org_000000000000000000000000/budget").status_code == 404
    with upstream.http(admin_key) as http:
        assert http.get("/admin/budgets").status_code == 401
    with upstream.http() as anonymous:
        assert anonymous.get("/v1/budget").status_code == 401


def test_alerts_are_sent_once_per_threshold(upstream: Proxy) -> None:
    from tests.support import post_receiver

    received: list[dict[str, Any]] = []

    def answer(_path: str, headers: dict[str, str], _body: bytes) -> int:
        received.append(headers)
        return 200

    limit = worst_case() * 1.2
    with post_receiver(answer) as url:
        org_id, key = upstream.org(
            {"webhook_url": url, "budgets": {"monthly_usd": limit, "alert_thresholds": [0.000001]}}
        )
        secret = upstream.gateway.admin.post(f"/admin/orgs/{org_id}/webhook-secret")
        assert secret.status_code == 200
        with upstream.http(key) as http:
            for _ in range(3):
                assert ask(http, max_tokens=5).status_code == 200

            def alerts() -> list[dict[str, Any]]:
                listed = http.get("/v1/webhooks/deliveries").json()["data"]
                return [item for item in listed if item["event_type"].startswith("budget.")]

            found = eventually(alerts, timeout=10)
            eventually(lambda: received, timeout=30)
            assert ask(http, max_tokens=5).status_code == 200
            assert [item["event_type"] for item in alerts()] == ["budget.threshold_reached"]
    assert [item["event_type"] for item in found] == ["budget.threshold_reached"]
    assert len(received) == 1 and received[0]["tunegate-signature"]
