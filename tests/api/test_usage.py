"""`GET /v1/usage`: tokens, requests and estimated cost per model, key and day, equal to what
the upstream reported, with tuned models priced at their own rates."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from service.domain.pricing import inference_cost
from tests.api.proxy_helpers import Proxy, eventually, proxy, tuned_model, upstream

__all__ = ["proxy", "tuned_model", "upstream"]

HELLO = [{"role": "user", "content": "count my tokens please"}]


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def test_usage_sums_the_upstreams_usage_by_model_key_and_day(
    upstream: Proxy, tuned_model: str
) -> None:
    org_id, admin_key = upstream.org(role="admin")
    upstream.register(org_id, tuned_model)
    _, member_key = upstream.gateway.create_key(org_id, "member")
    reported: dict[tuple[str, str], list[int]] = {}
    for key, model, stream in [
        (admin_key, "gpt-4o-mini", False),
        (admin_key, tuned_model, True),
        (member_key, tuned_model, False),
        (member_key, tuned_model, False),
    ]:
        with upstream.sdk(key) as sdk:
            if stream:
                options: Any = {"include_usage": True}
                chunks = list(
                    sdk.chat.completions.create(
                        model=model, messages=HELLO, stream=True, stream_options=options
                    )
                )
                usage = chunks[-1].usage
            else:
                usage = sdk.chat.completions.create(model=model, messages=HELLO).usage
        assert usage is not None
        totals = reported.setdefault((key, model), [0, 0, 0])
        totals[0] += usage.prompt_tokens
        totals[1] += usage.completion_tokens
        totals[2] += 1

    rows = eventually(lambda: (r := upstream.usage(admin_key)) and r[0]["requests"] == 4 and r)
    assert rows[0]["prompt_tokens"] == sum(t[0] for t in reported.values())
    assert rows[0]["completion_tokens"] == sum(t[1] for t in reported.values())
    assert rows[0]["trained_tokens"] == 0  # training is counted apart, by the jobs

    by_model = {r["model"]: r for r in upstream.usage(admin_key, group_by="model")}
    assert set(by_model) == {"gpt-4o-mini", tuned_model}
    base, tuned = by_model["gpt-4o-mini"], by_model[tuned_model]
    assert base["cost"] == pytest.approx(
        inference_cost("gpt-4o-mini", base["prompt_tokens"], base["completion_tokens"]), abs=1e-9
    )
    assert tuned["cost"] == pytest.approx(
        inference_cost(tuned_model, tuned["prompt_tokens"], tuned["completion_tokens"]), abs=1e-9
    )
    assert inference_cost(tuned_model, 1000, 1000) > inference_cost("gpt-4o-mini", 1000, 1000)

    key_ids = {key: key.split("_")[1] for key in (admin_key, member_key)}
    grouped = upstream.usage(admin_key, group_by=["model", "key", "day"])
    assert {
        (r["key_id"], r["model"]): [r["prompt_tokens"], r["completion_tokens"], r["requests"]]
        for r in grouped
    } == {(key_ids[key], model): totals for (key, model), totals in reported.items()}
    assert {r["day"] for r in grouped} == {today()}
    assert upstream.usage(admin_key, group_by="key,day")[0].keys() >= {"key_id", "day", "cost"}


def test_date_ranges(upstream: Proxy) -> None:
    _, key = upstream.org(role="admin")
    with upstream.sdk(key) as sdk:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    eventually(lambda: upstream.usage(key, start_date=today(), end_date=today())[0]["requests"])
    past = upstream.usage(key, start_date="2020-01-01", end_date="2020-01-31")
    assert past == [
        {
            "day": None,
            "model": None,
            "key_id": None,
            "endpoint": None,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
            "total_tokens": 0,
            "trained_tokens": 0,
            "requests": 0,
            "cost": 0.0,
        }
    ]
    with upstream.http(key) as http:
        for params in (
            {"start_date": "2020-02-01", "end_date": "2020-01-01"},
            {"start_date": "2020-01-01", "end_date": "2022-01-01"},
            {"start_date": "yesterday"},
            {"group_by": "colour"},
        ):
            response = http.get("/v1/usage", params=params)
            assert response.status_code == 400, params
            assert response.json()["error"]["param"] in {"start_date", "group_by"}


def test_inference_keys_may_not_read_usage(upstream: Proxy) -> None:
    _, key = upstream.org(role="inference")
    with upstream.http(key) as http:
        assert http.get("/v1/usage").status_code == 403
