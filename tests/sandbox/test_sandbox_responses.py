"""The sandbox's Responses API, embeddings and moderations, through the official SDK."""

from __future__ import annotations

import base64
import time
from array import array
from typing import Any

import openai
import pytest
from openai import OpenAI

from service.domain.tokens import count_tokens

MODEL = "gpt-4o-mini-2024-07-18"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_a_response_echoes_with_honest_usage(client: OpenAI) -> None:
    response = client.responses.create(model=MODEL, input="What is the capital of France?")
    assert response.output_text == f"Echo from {MODEL}: What is the capital of France?"
    assert response.status == "completed" and response.usage is not None
    assert response.usage.output_tokens == count_tokens(response.output_text, MODEL)
    assert response.usage.input_tokens_details.cached_tokens == 0


def test_events_are_typed_and_numbered(client: OpenAI) -> None:
    events = list(client.responses.create(model=MODEL, input="a b c", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == f"Echo from {MODEL}: a b c"


def test_tool_calls_and_their_outputs(client: OpenAI) -> None:
    called = client.responses.create(model=MODEL, input="get_weather for Paris", tools=[WEATHER])
    [call] = called.output
    assert call.type == "function_call" and call.name == "get_weather"
    streamed = list(
        client.responses.create(
            model=MODEL, input="x", tools=[WEATHER], tool_choice="required", stream=True
        )
    )
    assert any(e.type == "response.function_call_arguments.done" for e in streamed)
    answered = client.responses.create(
        model=MODEL,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rainy"}],
        tools=[WEATHER],
    )
    assert answered.output_text == f"Echo from {MODEL}: rainy"


def test_output_limit_and_reasoning_models(client: OpenAI) -> None:
    short = client.responses.create(model=MODEL, input="hi", max_output_tokens=64)
    assert short.status == "completed"
    long = client.responses.create(model=MODEL, input="word " * 40, max_output_tokens=16)
    assert long.status == "incomplete" and long.incomplete_details is not None
    assert long.usage is not None and long.usage.output_tokens == 16
    reasoned = client.responses.create(model="o4-mini", input="think")
    assert [item.type for item in reasoned.output] == ["reasoning", "message"]
    assert reasoned.usage is not None
    assert reasoned.usage.output_tokens_details.reasoning_tokens == 16


def test_stored_chains_count_cached_tokens(client: OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="remember this")
    second = client.responses.create(model=MODEL, input="and this", previous_response_id=first.id)
    assert second.usage is not None and first.usage is not None
    carried = first.usage.input_tokens + first.usage.output_tokens
    assert second.usage.input_tokens_details.cached_tokens == carried
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_missing")


def test_unstored_responses_are_not_kept(client: OpenAI) -> None:
    made = client.responses.create(model=MODEL, input="gone", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(made.id)


def test_retrieve_replay_items_and_delete(client: OpenAI) -> None:
    made = client.responses.create(
        model=MODEL, input=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    )
    assert client.responses.retrieve(made.id).output_text == made.output_text
    replay = list(client.responses.retrieve(made.id, stream=True, starting_after=3))
    assert replay[0].sequence_number == 4
    items = client.responses.input_items.list(made.id, order="asc")
    assert [item.content[0].text for item in items.data] == ["one", "two"]  # type: ignore[union-attr]
    assert client.responses.input_items.list(made.id, limit=1).has_more
    client.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(made.id)


def test_background_responses_run_and_cancel(client: OpenAI) -> None:
    running = client.responses.create(model=MODEL, input="later", background=True)
    assert running.status == "queued"
    cancelled = client.responses.cancel(running.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(running.id).status == "cancelled"
    finishing = client.responses.create(model=MODEL, input="soon", background=True)
    deadline = time.monotonic() + 10
    while client.responses.retrieve(finishing.id).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(client.responses.create(model=MODEL, input="now").id)


def test_embeddings_are_deterministic_unit_vectors(client: OpenAI) -> None:
    floats = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"],
                                      encoding_format="float")  # fmt: skip
    again = client.embeddings.create(model="text-embedding-3-small", input="a")
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-large", input="a", dimensions=64, encoding_format="base64"
    )
    assert [len(item.embedding) for item in floats.data] == [1536, 1536]
    assert floats.data[0].embedding == again.data[0].embedding != floats.data[1].embedding
    assert sum(v * v for v in floats.data[0].embedding) == pytest.approx(1.0, abs=1e-4)
    encoded = raw.http_response.json()["data"][0]["embedding"]
    assert len(array("f", base64.b64decode(encoded))) == 64
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-ada-002", input="a", dimensions=8)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model=MODEL, input="a")


def test_moderations_flag_a_small_vocabulary(client: OpenAI) -> None:
    result = client.moderations.create(input=["have a nice day", "build a bomb"])
    calm, flagged = result.results
    assert not calm.flagged and flagged.flagged
    assert flagged.categories.illicit_violent and not flagged.categories.sexual
    parts = client.moderations.create(
        input=[
            {"type": "text", "text": "I hate mondays"},
            {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
        ]
    )
    assert parts.results[0].flagged
    assert "image" in parts.results[0].category_applied_input_types.violence
