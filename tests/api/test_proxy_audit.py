"""Every proxied call leaves one audit record: model, tokens, outcome, status, and its content
only as the org's `log_content` allows."""

from __future__ import annotations

from typing import Any

from tests.api.proxy_helpers import Proxy, eventually, proxy, upstream

__all__ = ["proxy", "upstream"]

SECRET_TEXT = "write to bob@example.com"


def calls(proxy: Proxy, key: str, count: int) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        with proxy.http(key) as http:
            data: list[dict[str, Any]] = http.get("/v1/audit", params={"action": "chat"}).json()[
                "data"
            ]
        return data if len(data) >= count else None

    return eventually(found)


def chat(proxy: Proxy, key: str, **fields: Any) -> Any:
    with proxy.sdk(key) as sdk:
        messages: Any = [{"role": "user", "content": SECRET_TEXT}]
        reply = sdk.chat.completions.create(model="gpt-4o-mini", messages=messages, **fields)
        return list(reply) if fields.get("stream") else reply


def test_one_record_per_call_with_model_tokens_and_outcome(upstream: Proxy) -> None:
    _, key = upstream.org(role="admin")
    reply = chat(upstream, key)
    chat(upstream, key, stream=True)
    records = calls(upstream, key, 2)
    assert len(records) == 2
    streamed, plain = records
    assert plain["status"] == streamed["status"] == 200
    assert plain["outcome"] == streamed["outcome"] == "success"
    assert plain["resource_id"] == "gpt-4o-mini" and plain["details"]["model"] == "gpt-4o-mini"
    assert plain["details"]["prompt_tokens"] == reply.usage.prompt_tokens
    assert plain["details"]["completion_tokens"] == reply.usage.completion_tokens
    assert streamed["details"]["stream"] is True
    assert streamed["details"]["completion_tokens"] == reply.usage.completion_tokens
    assert plain["details"]["pii"] == {"EMAIL": 1}
    assert "content" not in plain["details"]  # log_content defaults to none
    assert plain["request_id"] and plain["key_id"]


def test_redacted_content_keeps_no_pii_even_when_the_upstream_saw_it(upstream: Proxy) -> None:
    _, key = upstream.org({"pii": "allow", "log_content": "redacted"}, role="admin")
    chat(upstream, key)
    chat(upstream, key, stream=True)
    assert upstream.upstream_bodies()[0]["messages"][0]["content"] == SECRET_TEXT
    for record in calls(upstream, key, 2):
        content = record["details"]["content"]
        assert content["messages"] == [{"role": "user", "content": "write to [EMAIL]"}]
        assert content["completion"] == ["Echo from gpt-4o-mini-2024-07-18: write to [EMAIL]"]


def test_full_content_is_what_was_exchanged_with_the_upstream(upstream: Proxy) -> None:
    _, key = upstream.org({"log_content": "full"}, role="admin")
    chat(upstream, key)
    record = calls(upstream, key, 1)[0]
    assert record["details"]["content"]["messages"][0]["content"] == "write to [EMAIL]"


def test_refused_calls_are_audited_too(upstream: Proxy) -> None:
    _, key = upstream.org({"pii": "block"}, role="admin")
    with upstream.http(key) as http:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SECRET_TEXT}]}
        assert http.post("/v1/chat/completions", json=body).status_code == 400
        assert (
            http.post("/v1/chat/completions", json={**body, "model": "ft:x:y::z"}).status_code
            == 404
        )
    with upstream.http("tgk_unknown_" + "x" * 40) as http:
        assert http.post("/v1/chat/completions", json=body).status_code == 401
    records = calls(upstream, key, 2)
    assert [(r["status"], r["outcome"], r["details"]["error"]) for r in records] == [
        (404, "denied", "model_not_found"),
        (400, "rejected", "pii_blocked"),
    ]
