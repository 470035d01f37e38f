"""Embeddings and moderations through the official SDK, against the sandbox upstream: every
input shape, base64 passed through byte for byte, the org's policy, rate limits, usage and
audit."""

from __future__ import annotations

import base64
from array import array
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.api.conftest import UPSTREAM_KEY
from tests.api.proxy_helpers import Proxy, eventually, proxy, upstream

__all__ = ["proxy", "upstream"]

SMALL = "text-embedding-3-small"


def sent(proxy: Proxy, path: str) -> list[dict[str, Any]]:
    return proxy.upstream_bodies(path)


def audit(proxy: Proxy, key: str, action: str) -> list[dict[str, Any]]:
    with proxy.http(key) as http:
        response = http.get("/v1/audit", params={"action": action})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_embeddings_of_a_string_and_a_list(upstream: Proxy) -> None:
    _, key = upstream.org(role="admin")
    with upstream.sdk(key) as sdk:
        one = sdk.embeddings.create(model=SMALL, input="hello", encoding_format="float")
        many = sdk.embeddings.create(model=SMALL, input=["hello", "world"], dimensions=256)
    assert len(one.data) == 1 and len(one.data[0].embedding) == 1536
    assert [len(item.embedding) for item in many.data] == [256, 256]
    assert one.usage.prompt_tokens == 1 and many.usage.prompt_tokens == 2
    entries = upstream.upstream_requests("/v1/embeddings")
    assert [entry["status"] for entry in entries] == [200, 200]  # the gateway added its key
    assert key.rsplit("_", 1)[1] not in orjson.dumps(entries).decode()
    first, second = sent(upstream, "/v1/embeddings")
    assert first["input"] == "hello" and second["dimensions"] == 256
    assert second["encoding_format"] == "base64"  # the SDK's default, decoded by the SDK
    [record, _] = eventually(lambda: audit(upstream, key, "embeddings.create"))
    assert record["outcome"] == "success" and record["details"]["prompt_tokens"] == 2
    rows = upstream.usage(key, group_by="endpoint,model")
    assert [(r["endpoint"], r["model"], r["prompt_tokens"]) for r in rows] == [
        ("embeddings", SMALL, 3)
    ]
    assert rows[0]["cost"] == pytest.approx(3 * 0.02 / 1_000_000)


def test_base64_passes_through_byte_for_byte(upstream: Proxy) -> None:
    _, key = upstream.org()
    body = {"model": SMALL, "input": ["same bytes"], "encoding_format": "base64"}
    with upstream.http(key) as http:
        through = http.post("/v1/embeddings", json=body)
    direct = httpx.post(
        upstream.gateway.sandbox.base_url_for(upstream.run) + "/embeddings",
        json=body,
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
    )
    assert through.status_code == 200 and direct.status_code == 200
    assert through.content == direct.content
    vector = array("f", base64.b64decode(through.json()["data"][0]["embedding"]))
    assert len(vector) == 1536 and abs(sum(v * v for v in vector) - 1) < 1e-3


def test_token_inputs_need_opaque_parts_allowed(upstream: Proxy) -> None:
    _, refusing = upstream.org()
    _, allowing = upstream.org({"opaque_parts": "allow"})
    with upstream.sdk(refusing) as sdk, pytest.raises(openai.BadRequestError) as refused:
        sdk.embeddings.create(model=SMALL, input=[[1, 2, 3]])
    assert refused.value.code == "opaque_content_refused"
    with upstream.sdk(allowing) as sdk:
        tokens = sdk.embeddings.create(model=SMALL, input=[1, 2, 3])
        arrays = sdk.embeddings.create(model=SMALL, input=[[1, 2], [3]])
    assert tokens.usage.prompt_tokens == 3 and len(arrays.data) == 2
    assert [body["input"] for body in sent(upstream, "/v1/embeddings")] == [
        [1, 2, 3],
        [[1, 2], [3]],
    ]


def test_embedding_inputs_are_redacted_or_blocked(upstream: Proxy) -> None:
    _, redacting = upstream.org()
    _, blocking = upstream.org({"pii": "block"})
    with upstream.sdk(redacting) as sdk:
        sdk.embeddings.create(model=SMALL, input=["mail jane@example.com", "fine"])
    with upstream.sdk(blocking) as sdk, pytest.raises(openai.BadRequestError) as blocked:
        sdk.embeddings.create(model=SMALL, input=["fine", "call 415-555-0134"])
    assert sent(upstream, "/v1/embeddings")[0]["input"] == ["mail [EMAIL]", "fine"]
    assert isinstance(blocked.value.body, dict) and blocked.value.body["param"] == "input[1]"
    assert len(sent(upstream, "/v1/embeddings")) == 1


def test_embedding_models_follow_the_policy(upstream: Proxy) -> None:
    _, key = upstream.org({"allowed_models": ["gpt-4o-mini"]})
    with upstream.sdk(key) as sdk, pytest.raises(openai.NotFoundError):
        sdk.embeddings.create(model=SMALL, input="x")
    assert sent(upstream, "/v1/embeddings") == []


def test_embeddings_are_rate_limited(upstream: Proxy) -> None:
    _, key = upstream.org({"rate_limits": {"requests_per_minute": 1}})
    with upstream.sdk(key) as sdk:
        sdk.embeddings.create(model=SMALL, input="one")
        with pytest.raises(openai.RateLimitError):
            sdk.embeddings.create(model=SMALL, input="two")
    assert len(sent(upstream, "/v1/embeddings")) == 1


def test_moderations_flag_and_count(upstream: Proxy) -> None:
    _, key = upstream.org(role="admin")
    with upstream.sdk(key) as sdk:
        flagged = sdk.moderations.create(input="I will kill the process")
        calm = sdk.moderations.create(
            model="omni-moderation-latest", input=["a calm sentence", "hate speech"]
        )
    assert flagged.results[0].flagged and flagged.results[0].categories.violence
    assert [r.flagged for r in calm.results] == [False, True]
    assert sent(upstream, "/v1/moderations")[0]["model"] == "omni-moderation-latest"
    entries = upstream.upstream_requests("/v1/moderations")
    assert [entry["status"] for entry in entries] == [200, 200]
    assert key.rsplit("_", 1)[1] not in orjson.dumps(entries).decode()
    records = eventually(lambda: audit(upstream, key, "moderations.create"))
    assert len(records) == 2 and records[0]["details"]["usage_estimated"] is True
    rows = upstream.usage(key, group_by="endpoint")
    assert [(r["endpoint"], r["requests"], r["cost"]) for r in rows] == [("moderations", 2, 0.0)]


def test_moderation_inputs_follow_the_pii_policy(upstream: Proxy) -> None:
    _, key = upstream.org()
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with upstream.sdk(key) as sdk:
        sdk.moderations.create(input="reach me at jane@example.com")
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.moderations.create(input=[{"type": "text", "text": "hi"}, image])
    assert sent(upstream, "/v1/moderations")[0]["input"] == "reach me at [EMAIL]"
    assert refused.value.code == "opaque_content_refused"
