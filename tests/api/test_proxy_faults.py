"""Upstream failures as the client sees them: 4xx passed back in OpenAI's envelope, 5xx and a
dropped connection as 502, a hang as 504, the upstream's 429 as a 429; each audited."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.api.proxy_helpers import Proxy, eventually, proxy, upstream

__all__ = ["proxy", "upstream"]

HELLO = [{"role": "user", "content": "hello"}]
PATH = "/v1/chat/completions"


def audit_of(proxy: Proxy, key: str) -> list[dict[str, Any]]:
    with proxy.http(key) as http:
        response = http.get("/v1/audit", params={"action": "chat.completions.create"})
    records: list[dict[str, Any]] = response.json()["data"]
    return records


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"kind": "500"}, 502, "upstream_unavailable"),
        ({"kind": "503"}, 502, "upstream_unavailable"),
        ({"kind": "drop"}, 502, "upstream_unavailable"),
        ({"kind": "hang", "seconds": 10}, 504, "upstream_timeout"),
    ],
)
def test_upstream_failures_map_to_gateway_errors(
    upstream: Proxy, fault: dict[str, Any], status: int, code: str
) -> None:
    _, key = upstream.org(role="admin")
    upstream.add_fault(path_prefix=PATH, count=2, **fault)
    with upstream.http(key) as http:
        for stream in (False, True):
            body = {"model": "gpt-4o-mini", "messages": HELLO, "stream": stream}
            response = http.post(PATH, json=body)
            assert response.status_code == status, response.text
            error = response.json()["error"]
            assert error["code"] == code and error["type"] == "upstream_error"
            assert "sk-" not in response.text
    records = eventually(lambda: (found := audit_of(upstream, key)) and len(found) >= 2 and found)
    assert {(r["status"], r["outcome"], r["details"]["error"]) for r in records} == {
        (status, "error", code)
    }


def test_upstream_client_errors_come_back_in_openais_envelope(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.sdk(key) as sdk, pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="gpt-nonexistent", messages=HELLO)
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "model_not_found"
    with upstream.sdk(key) as sdk, pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, n=1000)


def test_the_upstreams_rate_limit_reaches_the_client_with_retry_after(upstream: Proxy) -> None:
    _, key = upstream.org()
    upstream.add_fault(kind="429", path_prefix=PATH, retry_after=7)
    with upstream.http(key) as http:
        response = http.post(PATH, json={"model": "gpt-4o-mini", "messages": HELLO})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_a_failed_call_records_no_usage(upstream: Proxy) -> None:
    _, key = upstream.org()
    upstream.add_fault(kind="500", path_prefix=PATH)
    with upstream.http(key) as http:
        assert http.post(PATH, json={"model": "gpt-4o-mini", "messages": HELLO}).status_code == 502
    assert upstream.usage(key)[0]["requests"] == 0
