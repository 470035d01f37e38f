"""Worst-case bodies for the PII scan: refused by the scan budget, while others are served."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.api.proxy_helpers import Proxy, proxy, upstream

__all__ = ["proxy", "upstream"]

MIB = 1024 * 1024


def worst_case(unit: str) -> dict[str, Any]:
    text = unit * ((10 * MIB - 4096) // len(unit))
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


@pytest.mark.parametrize(
    "unit", ["call 415 555 2671 now ", "mail bob.smith@example.com ok "], ids=["phones", "emails"]
)
@pytest.mark.parametrize("mode", ["redact", "block"])
def test_health_answers_while_a_ten_megabyte_worst_case_is_refused(
    upstream: Proxy, unit: str, mode: str
) -> None:
    _, key = upstream.org({"pii": mode})
    body = worst_case(unit)
    result: dict[str, Any] = {}

    def send() -> None:
        with upstream.http(key) as http:
            result["response"] = http.post("/v1/chat/completions", json=body, timeout=120)

    sender = threading.Thread(target=send)
    sender.start()
    health = []
    with upstream.http() as http:
        while sender.is_alive():
            health.append(http.get("/health").status_code)
    sender.join()
    assert health and set(health) == {200}
    response = result["response"]
    assert response.status_code == 413, response.text[:500]
    assert response.json()["error"]["code"] == "pii_scan_budget_exceeded"
    assert upstream.upstream_requests() == []
