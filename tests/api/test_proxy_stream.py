"""Streams: passed through event by event as they arrive, usage counted from the final chunk
(which reaches only clients that asked for it), and a client that leaves closes the upstream."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from tests.api.conftest import Gateway, gateway_settings, running_gateway
from tests.api.proxy_helpers import BASE_MODEL, Proxy, eventually, proxy, upstream
from tests.api.slow_upstream import SlowUpstream

__all__ = ["proxy", "upstream"]

HELLO = [{"role": "user", "content": "stream me a reply please"}]
EVENTS = 30


@dataclass
class Slow:
    proxy: Proxy
    upstream: SlowUpstream


@pytest.fixture(scope="module")
def slow(gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slow]:
    """A gateway in front of an upstream that sends 30 events, one every 100 ms."""
    upstream = SlowUpstream(events=EVENTS, interval=0.1).start()
    settings = gateway_settings(
        tmp_path_factory.mktemp("slow"), upstream.base_url, redis_url=gateway.settings.redis_url
    )
    try:
        with httpx.Client() as unused, running_gateway(settings, gateway.sandbox) as running:
            yield Slow(Proxy(running, "unused", unused), upstream)
    finally:
        upstream.stop()


def sse_events(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any] | str]:
    events: list[dict[str, Any] | str] = []
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                events.append(data if data == "[DONE]" else orjson.loads(data))
    return events


def test_events_reach_the_client_as_the_upstream_sends_them(slow: Slow) -> None:
    _, key = slow.proxy.org()
    served = slow.upstream.served
    already = len(served)
    arrivals: list[float] = []
    sent_at_first = -1
    started = time.perf_counter()
    with slow.proxy.sdk(key) as sdk:
        for chunk in sdk.chat.completions.create(model="slow", messages=HELLO, stream=True):
            assert chunk.choices[0].delta.content
            if not arrivals:
                sent_at_first = served[already].sent
            arrivals.append(time.perf_counter() - started)
    assert len(arrivals) == EVENTS
    assert 1 <= sent_at_first < EVENTS  # the first event did not wait for the last
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert sorted(gaps)[len(gaps) // 2] > 0.02  # one by one, not in a burst at the end


def test_a_client_that_leaves_closes_the_upstream_stream(slow: Slow) -> None:
    _, key = slow.proxy.org(role="admin")
    served = slow.upstream.served
    already = len(served)
    with slow.proxy.http(key) as http:
        body = {"model": "slow", "messages": HELLO, "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            lines = response.iter_lines()
            assert next(lines).startswith("data: ")
        record = eventually(lambda: slow_audit(http), timeout=10)
    assert eventually(lambda: len(served) > already and served[already].left_early, timeout=10)
    assert served[already].sent < EVENTS // 2  # closed long before the stream's end
    assert record["status"] == 499 and record["outcome"] == "error"


def slow_audit(http: httpx.Client) -> dict[str, Any] | None:
    records = http.get("/v1/audit", params={"action": "chat.completions.create"}).json()["data"]
    return records[0] if records else None


def test_usage_is_counted_and_its_chunk_withheld_from_clients_that_did_not_ask(
    upstream: Proxy,
) -> None:
    _, key = upstream.org()
    with upstream.http(key) as http:
        quiet = sse_events(http, {"model": "gpt-4o-mini", "messages": HELLO, "stream": True})
        asked = sse_events(
            http,
            {
                "model": "gpt-4o-mini",
                "messages": HELLO,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
    assert quiet[-1] == asked[-1] == "[DONE]"
    assert all(isinstance(e, str) or e["choices"] for e in quiet)
    final = asked[-2]
    assert isinstance(final, dict) and final["choices"] == [] and final["usage"]
    assert len(asked) == len(quiet) + 1
    usage = final["usage"]
    rows = eventually(lambda: [r for r in upstream.usage(key) if r["requests"] == 2])
    assert rows[0]["prompt_tokens"] == 2 * usage["prompt_tokens"]
    assert rows[0]["completion_tokens"] == 2 * usage["completion_tokens"]
    bodies = upstream.upstream_bodies()
    assert all(body["stream_options"] == {"include_usage": True} for body in bodies)


def test_the_sdk_streaming_helpers_work_unchanged(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.sdk(key) as sdk:
        chunks = list(
            sdk.chat.completions.create(
                model="gpt-4o-mini",
                messages=HELLO,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        with sdk.chat.completions.stream(model="gpt-4o-mini", messages=HELLO) as helper:
            final = helper.get_final_completion()
        legacy = list(sdk.completions.create(model="davinci-002", prompt="hi", stream=True))
    assert text == f"Echo from {BASE_MODEL}: stream me a reply please"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert final.choices[0].message.content == text
    assert "".join(c.choices[0].text for c in legacy if c.choices).startswith("Echo from")
