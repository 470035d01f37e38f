"""Chat and legacy completions: echoes, tools, limits, usage, model errors."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai import OpenAI

from service.domain.tokens import count_tokens

MODEL = "gpt-4o-mini-2024-07-18"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        },
    },
}


def test_usage_is_counted_with_tiktoken(client: OpenAI) -> None:
    messages: Any = [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    reply = client.chat.completions.create(model=MODEL, messages=messages)
    text = reply.choices[0].message.content
    assert text == f"Echo from {MODEL}: What is the capital of France?"
    assert reply.usage is not None
    expected_prompt = 3 + sum(
        3 + count_tokens(m["role"], MODEL) + count_tokens(m["content"], MODEL) for m in messages
    )
    assert reply.usage.prompt_tokens == expected_prompt
    assert reply.usage.completion_tokens == count_tokens(text, MODEL)
    assert reply.choices[0].finish_reason == "stop"


def test_alias_content_parts_and_n(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        n=3,
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second part"}]},
        ],
    )
    assert reply.model == MODEL
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert {c.message.content for c in reply.choices} == {f"Echo from {MODEL}: second part"}


def test_max_tokens_truncates(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, max_completion_tokens=3, messages=[{"role": "user", "content": "long text"}]
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    text = reply.choices[0].message.content or ""
    assert f"Echo from {MODEL}: long text".startswith(text) and count_tokens(text, MODEL) <= 3


def test_forced_tool_choice_returns_a_call(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Paris"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 0}


def test_tool_named_by_the_user_is_called_and_streams(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "please use get_weather"}],
            tools=[WEATHER],
            stream=True,
        )
    )
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    arguments = "".join((tc.function.arguments or "") for tc in calls if tc.function)
    assert json.loads(arguments)["city"] == "please use get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    plain = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hello"}],
        tools=[WEATHER],
    )
    assert plain.choices[0].message.tool_calls is None


def test_unknown_and_wrong_kind_of_model(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-0", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError, match="not a chat model"):
        client.chat.completions.create(
            model="babbage-002", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError, match="is a chat model"):
        client.completions.create(model=MODEL, prompt="x")
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL, messages=[])
    assert bad.value.param == "messages"


def test_legacy_completion_defaults_to_16_tokens(client: OpenAI) -> None:
    prompt = " ".join(["word"] * 30)
    answer = client.completions.create(model="davinci-002", prompt=prompt)
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 16
