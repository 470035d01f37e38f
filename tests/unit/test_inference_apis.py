"""The Responses API, embeddings and moderations in the pure layer: body checks, hosted tools,
caps, usage shapes, the Responses stream relay, and prices."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.domain import pricing
from service.domain.inference.output import SseRelay, Usage, completion_texts, usage_of
from service.domain.inference.request import check_body, prompt_texts
from service.domain.inference.responses import (
    is_open,
    response_id_of,
    stored_query,
    streams,
)
from service.errors import InvalidRequest
from tests.unit.test_inference import run


def response(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "input": "hi"} | fields


# --- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "body", "param"),
    [
        ("responses", {"model": "m", "input": 3}, "input"),
        ("responses", {"model": "m", "previous_response_id": 1}, "previous_response_id"),
        ("responses", {"model": "m", "conversation": "conv_1"}, "conversation"),
        ("responses", {"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "input[0]"),
        ("responses", {"model": "m", "tools": {"type": "function"}}, "tools"),
        ("embeddings", {"model": "m"}, "input"),
        ("embeddings", {"model": "m", "input": []}, "input"),
        ("embeddings", {"model": "m", "input": ["a", 1]}, "input"),
        ("embeddings", {"model": "m", "input": [[1], []]}, "input"),
        ("moderations", {"input": [1]}, "input"),
    ],
)
def test_a_malformed_body_names_its_parameter(api: str, body: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_body(body, api)  # type: ignore[arg-type]
    assert refused.value.param == param


def test_moderations_default_their_model() -> None:
    assert check_body({"input": "x"}, "moderations")["model"] == "omni-moderation-latest"


def test_responses_store_false_cap_and_hashed_users() -> None:
    prepared = run(response(max_output_tokens=900, user="u1"), "responses", max_output_tokens=50)
    body = prepared.body
    assert body["store"] is False and body["max_output_tokens"] == 50
    assert body["user"].startswith("tg-") and prepared.output_limit == 50
    assert run(response(), "responses", max_output_tokens=50).body["max_output_tokens"] == 50


def test_a_responses_stream_asks_for_nothing_more() -> None:
    prepared = run(response(stream=True), "responses")
    assert prepared.stream and prepared.client_wants_usage
    assert "stream_options" not in prepared.body


def test_embeddings_have_no_output_and_count_token_ids() -> None:
    prepared = run({"model": "e", "input": [[1, 2], [3]]}, "embeddings", opaque_parts="allow")
    assert prepared.output_limit == 0 and prepared.choices == 1 and prepared.token_ids == 3
    assert "store" not in prepared.body and "max_tokens" not in prepared.body
    capped = run({"model": "e", "input": "x"}, "embeddings", max_output_tokens=5)
    assert capped.output_limit == 0 and "max_tokens" not in capped.body


def test_token_inputs_are_refused_unless_opaque_parts_are_allowed() -> None:
    with pytest.raises(InvalidRequest) as refused:
        run({"model": "e", "input": [1, 2]}, "embeddings")
    assert refused.value.code == "opaque_content_refused" and refused.value.param == "input"
    assert run({"model": "e", "input": [1, 2]}, "embeddings", pii="allow").token_ids == 2


@pytest.mark.parametrize(
    ("tool", "allowed"),
    [
        ({"type": "function", "name": "f"}, []),
        ({"type": "custom", "name": "f"}, []),
        ({"type": "image_generation"}, []),
        ({"type": "web_search_preview"}, ["web_search"]),
        ({"type": "web_search_2025_08_26"}, ["web_search"]),
        ({"type": "mcp", "server_label": "x", "server_url": "https://x.test"}, ["mcp"]),
        ({"type": "namespace", "tools": [{"type": "function", "name": "f"}]}, []),
    ],
)
def test_tools_the_policy_allows(tool: dict[str, Any], allowed: list[str]) -> None:
    run(response(tools=[tool]), "responses", hosted_tools=allowed)


@pytest.mark.parametrize(
    ("tool", "allowed", "param"),
    [
        ({"type": "web_search"}, [], "tools[0]"),
        ({"type": "file_search"}, ["web_search"], "tools[0]"),
        ({"type": "code_interpreter"}, ["mcp"], "tools[0]"),
        ({"type": "tool_search"}, ["web_search", "file_search", "code_interpreter", "mcp"], None),
        ({"type": "namespace", "tools": [{"type": "web_search"}]}, [], "tools[0].tools[0]"),
        ({"name": "untyped"}, [], "tools[0]"),
    ],
)
def test_tools_the_policy_refuses(tool: dict[str, Any], allowed: list[str], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        run(response(tools=[tool]), "responses", hosted_tools=allowed)
    assert refused.value.code == "tool_not_allowed"
    assert refused.value.param == (param or "tools[0]")


def test_prompt_texts_of_each_api() -> None:
    body = response(
        instructions="be brief",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "one"}]},
            {"type": "function_call_output", "call_id": "c", "output": "two"},
        ],
    )
    assert prompt_texts(body, "responses") == ["be brief", "one", "two"]
    assert prompt_texts({"input": ["a", "b"]}, "embeddings") == ["a", "b"]
    parts = [{"type": "text", "text": "t"}, {"type": "image_url", "image_url": {"url": "u"}}]
    assert prompt_texts({"input": parts}, "moderations") == ["t"]


# --- what comes back ---------------------------------------------------------------------------

RESPONSE_USAGE = {
    "input_tokens": 30,
    "input_tokens_details": {"cached_tokens": 10},
    "output_tokens": 20,
    "output_tokens_details": {"reasoning_tokens": 8},
    "total_tokens": 50,
}


def test_usage_shapes() -> None:
    chat = {
        "usage": {
            "prompt_tokens": 5,
            "completion_tokens": 2,
            "prompt_tokens_details": {"cached_tokens": 1},
            "completion_tokens_details": {"reasoning_tokens": 1},
        }
    }
    assert usage_of(chat) == Usage(5, 2, cached_tokens=1, reasoning_tokens=1)
    assert usage_of({"object": "response", "usage": RESPONSE_USAGE}, "responses") == Usage(
        30, 20, cached_tokens=10, reasoning_tokens=8
    )
    event = {"type": "response.completed", "response": {"usage": RESPONSE_USAGE}}
    assert usage_of(event, "responses") == Usage(30, 20, cached_tokens=10, reasoning_tokens=8)
    assert usage_of({"usage": {"prompt_tokens": 4, "total_tokens": 4}}, "embeddings") == Usage(4, 0)
    assert usage_of({"results": []}, "none") is None
    assert usage_of({"usage": None}, "responses") is None


def test_response_ids_and_states() -> None:
    made = {"id": "resp_1", "object": "response", "status": "queued"}
    assert response_id_of(made) == "resp_1" and is_open(made)
    assert response_id_of({"type": "response.created", "response": made}) == "resp_1"
    assert response_id_of({"id": "chatcmpl-1", "object": "chat.completion"}) is None
    assert not is_open({**made, "status": "completed"})
    texts = completion_texts(
        {
            "output": [
                {"type": "reasoning", "summary": []},
                {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
            ]
        },
        "responses",
    )
    assert texts == ["Hi"]


def test_stored_queries_keep_only_known_parameters() -> None:
    query = [("stream", "true"), ("starting_after", "3"), ("api_key", "x"), ("include[]", "a")]
    kept = stored_query("retrieve", query)
    assert kept == [("stream", "true"), ("starting_after", "3"), ("include[]", "a")]
    assert streams("retrieve", kept) and not streams("input_items", kept)
    assert stored_query("delete", query) == []


def typed(kind: str, **fields: Any) -> bytes:
    data = orjson.dumps({"type": kind, **fields})
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


RESPONSE = {"id": "resp_9", "object": "response", "status": "in_progress", "usage": None}
EVENTS = [
    typed("response.created", sequence_number=0, response=RESPONSE),
    typed("response.output_text.delta", sequence_number=1, output_index=0, delta="Hel"),
    typed("response.output_text.delta", sequence_number=2, output_index=0, delta="lo"),
    typed(
        "response.completed",
        sequence_number=3,
        response={**RESPONSE, "status": "completed", "usage": RESPONSE_USAGE},
    ),
]


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
@pytest.mark.parametrize("collect", [False, True])
def test_a_responses_stream_passes_whole_and_reports_usage(size: int, collect: bool) -> None:
    relay = SseRelay("responses", forward_usage=False, collect_text=collect, want_id=True)
    data = b"".join(EVENTS)
    out = b"".join(relay.feed(data[i : i + size]) for i in range(0, len(data), size))
    assert out + relay.flush() == data
    assert relay.usage == Usage(30, 20, cached_tokens=10, reasoning_tokens=8)
    assert relay.response_id == "resp_9" and not relay.response_open
    assert relay.completions() == (["Hello"] if collect else [])


# --- prices ------------------------------------------------------------------------------------


def test_served_models_and_cached_input_are_priced() -> None:
    assert pricing.inference_cost("text-embedding-3-small", 1_000_000, 0) == pytest.approx(0.02)
    assert pricing.inference_cost("omni-moderation-latest", 1_000_000, 0) == 0
    assert pricing.inference_cost("gpt-5", 0, 1_000_000) == pytest.approx(10.0)
    cached = pricing.inference_cost("gpt-4o-mini", 1_000_000, 0, cached_tokens=400_000)
    assert cached == pytest.approx(0.6 * 0.15 + 0.4 * 0.075)
    tuned = pricing.inference_cost(
        "ft:gpt-4o-mini-2024-07-18:a::b", 1_000_000, 0, cached_tokens=1_000_000
    )
    assert tuned == pytest.approx(0.15)
    with pytest.raises(pricing.UnknownModelError):
        pricing.inference_cost("ft:text-embedding-3-small:a::b", 1, 1)
    assert not pricing.is_fine_tunable("text-embedding-3-small")
