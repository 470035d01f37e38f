"""The Responses API through the official SDK, against the sandbox upstream: every method,
streams included, with the sandbox's request log showing what left (the org's policy applied,
the upstream's key added, the caller's key absent) and the stored responses kept per org."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest
from pydantic import BaseModel

from tests.api.proxy_helpers import BASE_MODEL, Proxy, eventually, proxy, tuned_model, upstream

__all__ = ["proxy", "tuned_model", "upstream"]

STORING = {"force_store_false": False}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


def only_the_upstream_key_left(proxy: Proxy, key: str) -> list[dict[str, Any]]:
    """What reached the upstream, having been accepted there (the sandbox takes only its own
    key: the gateway added it), with no trace of the caller's key."""
    entries = proxy.upstream_requests("/v1/responses")
    assert entries and all(entry["status"] == 200 for entry in entries)
    secret = key.rsplit("_", 1)[1]
    assert secret not in orjson.dumps(entries).decode()
    assert not any("tgk" in value for e in entries for value in e["headers"].values())
    return entries


def bodies(proxy: Proxy) -> list[dict[str, Any]]:
    return proxy.upstream_bodies("/v1/responses")


def audits(proxy: Proxy, key: str, action: str) -> list[dict[str, Any]]:
    with proxy.http(key) as http:
        response = http.get("/v1/audit", params={"action": action})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_create_through_the_sdk_with_the_default_policy(upstream: Proxy) -> None:
    _, key = upstream.org(role="admin")
    with upstream.sdk(key) as sdk:
        raw = sdk.responses.with_raw_response.create(
            model="gpt-4o-mini", input="hello there", instructions="Be brief.", user="u-42"
        )
        response = raw.parse()
    assert raw.headers["x-request-id"]
    assert response.output_text == f"Echo from {BASE_MODEL}: hello there"
    assert response.usage is not None and response.usage.input_tokens > 0
    [sent] = bodies(upstream)
    assert sent["store"] is False  # force_store_false
    assert sent["user"].startswith("tg-") and sent["user"] != "u-42"
    assert len(only_the_upstream_key_left(upstream, key)) == 1
    [record] = eventually(lambda: audits(upstream, key, "responses.create"))
    assert record["outcome"] == "success"
    assert record["details"]["prompt_tokens"] == response.usage.input_tokens
    assert record["details"]["completion_tokens"] == response.usage.output_tokens


def test_streamed_events_pass_through_in_order(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.sdk(key) as sdk:
        events = list(sdk.responses.create(model="gpt-4o-mini", input="one two three", stream=True))
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == f"Echo from {BASE_MODEL}: one two three"
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.output_tokens > 0
    [sent] = bodies(upstream)
    assert sent["stream"] is True and "stream_options" not in sent


def test_the_stream_helper_is_unchanged(upstream: Proxy) -> None:
    _, key = upstream.org()
    with (
        upstream.sdk(key) as sdk,
        sdk.responses.stream(model="gpt-4o-mini", input="streamed via helper") as stream,
    ):
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == f"Echo from {BASE_MODEL}: streamed via helper"


def test_structured_output_parses(upstream: Proxy) -> None:
    class City(BaseModel):
        name: str
        population: int

    _, key = upstream.org()
    with upstream.sdk(key) as sdk:
        parsed = sdk.responses.parse(model="gpt-4o-mini", input="Paris", text_format=City)
    assert parsed.output_parsed == City(name="Paris", population=0)
    [sent] = bodies(upstream)
    assert sent["text"]["format"]["type"] == "json_schema"


def test_function_calls_round_trip(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.sdk(key) as sdk:
        first = sdk.responses.create(
            model="gpt-4o-mini", input="what is the weather?", tools=[WEATHER],
            tool_choice="required",
        )  # fmt: skip
        [call] = [item for item in first.output if item.type == "function_call"]
        assert call.name == "get_weather"
        second = sdk.responses.create(
            model="gpt-4o-mini",
            tools=[WEATHER],
            input=[
                {"role": "user", "content": "what is the weather?"},
                {
                    "type": "function_call",
                    "call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                },
                {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
            ],
        )
    assert second.output_text == f"Echo from {BASE_MODEL}: sunny"


def test_max_output_tokens_is_capped_and_users_hashed(upstream: Proxy) -> None:
    _, key = upstream.org({"max_output_tokens": 20})
    with upstream.sdk(key) as sdk:
        sdk.responses.create(
            model="gpt-4o-mini", input="hi", max_output_tokens=500, safety_identifier="end-user-7"
        )
        sdk.responses.create(model="gpt-4o-mini", input="hi")
    first, second = bodies(upstream)
    assert first["max_output_tokens"] == 20 and second["max_output_tokens"] == 20
    assert first["safety_identifier"].startswith("tg-")


def test_routing_matches_chat(upstream: Proxy, tuned_model: str) -> None:
    org_id, key = upstream.org({"allowed_models": ["gpt-4o-mini"]})
    upstream.register(org_id, tuned_model)
    with upstream.http(key) as http:
        assert http.put("/v1/aliases/support", json={"model": tuned_model}).status_code == 200
    _, other = upstream.org(name="other")
    with upstream.sdk(key) as sdk:
        assert sdk.responses.create(model="support", input="hi").model == tuned_model
        with pytest.raises(openai.NotFoundError) as refused:
            sdk.responses.create(model="gpt-4.1", input="hi")
    assert refused.value.code == "model_not_allowed" or refused.value.status_code == 404
    with upstream.sdk(other) as sdk, pytest.raises(openai.NotFoundError) as foreign:
        sdk.responses.create(model=tuned_model, input="hi")
    assert foreign.value.code == "model_not_found"
    assert [body["model"] for body in bodies(upstream)] == [tuned_model]


@pytest.mark.parametrize(
    ("tool", "kind"),
    [
        ({"type": "web_search"}, "web_search"),
        ({"type": "web_search_preview"}, "web_search"),
        ({"type": "file_search", "vector_store_ids": ["vs_1"]}, "file_search"),
        ({"type": "code_interpreter", "container": {"type": "auto"}}, "code_interpreter"),
        (
            {"type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.com/sse"},
            "mcp",
        ),
    ],
    ids=["web_search", "web_search_preview", "file_search", "code_interpreter", "mcp"],
)
def test_hosted_tools_need_the_policy(upstream: Proxy, tool: dict[str, Any], kind: str) -> None:
    _, refused_key = upstream.org()
    _, allowed_key = upstream.org({"hosted_tools": [kind]})
    with upstream.sdk(refused_key) as sdk, pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model="gpt-4o-mini", input="look it up", tools=[tool])  # type: ignore[list-item]
    assert refused.value.code == "tool_not_allowed"
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "tools[0]"
    assert bodies(upstream) == []
    with upstream.sdk(allowed_key) as sdk:
        sdk.responses.create(model="gpt-4o-mini", input="look it up", tools=[tool])  # type: ignore[list-item]
    assert [body["tools"][0]["type"] for body in bodies(upstream)] == [tool["type"]]


def test_an_unknown_tool_type_is_refused(upstream: Proxy) -> None:
    _, key = upstream.org({"hosted_tools": ["web_search", "file_search", "code_interpreter"]})
    with upstream.http(key) as http:
        response = http.post(
            "/v1/responses",
            json={"model": "gpt-4o-mini", "input": "x", "tools": [{"type": "teleport"}]},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "tool_not_allowed"


def test_stored_responses_retrieve_list_and_delete(upstream: Proxy) -> None:
    _, key = upstream.org(STORING)
    with upstream.sdk(key) as sdk:
        made = sdk.responses.create(model="gpt-4o-mini", input="remember me")
        again = sdk.responses.retrieve(made.id)
        items = sdk.responses.input_items.list(made.id)
        replayed = list(sdk.responses.retrieve(made.id, stream=True, starting_after=1))
        chained = sdk.responses.create(
            model="gpt-4o-mini", input="and now?", previous_response_id=made.id
        )
        sdk.responses.delete(made.id)
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(made.id)
    assert again.id == made.id and again.output_text == made.output_text
    assert [item.type for item in items.data] == ["message"]
    assert replayed[0].sequence_number == 2 and replayed[-1].type == "response.completed"
    assert chained.previous_response_id == made.id
    assert chained.usage is not None and chained.usage.input_tokens_details.cached_tokens > 0
    assert bodies(upstream)[0].get("store") is None  # the client's default: stored upstream
    paths = [(e["method"], e["path"]) for e in only_the_upstream_key_left(upstream, key)]
    assert ("DELETE", f"/v1/responses/{made.id}") in paths
    # the deleted response's second retrieve never left the gateway
    assert paths.count(("GET", f"/v1/responses/{made.id}")) == 2


def test_background_responses_cancel_and_count_usage_once(upstream: Proxy) -> None:
    _, key = upstream.org({**STORING, "log_content": "none"})
    with upstream.sdk(key) as sdk:
        running = sdk.responses.create(model="gpt-4o-mini", input="slowly", background=True)
        assert running.status == "queued" and running.usage is None
        cancelled = sdk.responses.cancel(running.id)
        assert cancelled.status == "cancelled"
        done = sdk.responses.create(model="gpt-4o-mini", input="in time", background=True)
        finished = eventually(
            lambda: (r := sdk.responses.retrieve(done.id)).status == "completed" and r,
            timeout=10,
        )
        sdk.responses.retrieve(done.id)  # a second look counts nothing more
    assert finished.usage is not None
    rows = upstream.usage(key, group_by="model")
    [row] = [r for r in rows if r["model"] == "gpt-4o-mini"]
    cancelled_usage = cancelled.usage.input_tokens if cancelled.usage else 0
    assert row["prompt_tokens"] == finished.usage.input_tokens + cancelled_usage
    assert row["completion_tokens"] == finished.usage.output_tokens


def test_store_is_forced_false_so_nothing_is_kept(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.sdk(key) as sdk:
        made = sdk.responses.create(model="gpt-4o-mini", input="forget me", store=True)
        with pytest.raises(openai.NotFoundError):
            sdk.responses.retrieve(made.id)
    assert bodies(upstream)[0]["store"] is False
    assert upstream.upstream_requests(f"/v1/responses/{made.id}") == []


def test_conversations_and_item_references_are_refused(upstream: Proxy) -> None:
    _, key = upstream.org(STORING)
    with upstream.http(key) as http:
        conversation = http.post(
            "/v1/responses",
            json={"model": "gpt-4o-mini", "input": "x", "conversation": "conv_123"},
        )
        reference = http.post(
            "/v1/responses",
            json={"model": "gpt-4o-mini", "input": [{"type": "item_reference", "id": "msg_1"}]},
        )
    assert conversation.status_code == 400 and reference.status_code == 400
    assert reference.json()["error"]["param"] == "input[0]"
    assert bodies(upstream) == []


def test_usage_counts_cached_and_reasoning_tokens_per_endpoint(upstream: Proxy) -> None:
    _, key = upstream.org(STORING)
    with upstream.sdk(key) as sdk:
        first = sdk.responses.create(model="o4-mini", input="think about it")
        second = sdk.responses.create(
            model="o4-mini", input="and more", previous_response_id=first.id
        )
        sdk.chat.completions.create(
            model="o4-mini", messages=[{"role": "user", "content": "hello"}]
        )
    assert first.usage is not None and second.usage is not None
    cached = second.usage.input_tokens_details.cached_tokens
    assert cached > 0 and first.usage.output_tokens_details.reasoning_tokens == 16
    rows = {row["endpoint"]: row for row in upstream.usage(key, group_by="endpoint")}
    assert set(rows) == {"chat", "responses"}
    responses = rows["responses"]
    assert responses["requests"] == 2 and responses["cached_tokens"] == cached
    assert responses["reasoning_tokens"] == 32
    prompt = first.usage.input_tokens + second.usage.input_tokens
    output = first.usage.output_tokens + second.usage.output_tokens
    # o4-mini: $1.10 input, $0.275 cached input, $4.40 output per 1M tokens
    expected = ((prompt - cached) * 1.1 + cached * 0.275 + output * 4.4) / 1_000_000
    assert responses["cost"] == pytest.approx(expected)
