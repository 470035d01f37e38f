"""The sandbox's completions: deterministic replies that show what arrived, with honest usage.

A chat reply is `Echo from <model>: <last user message text>`; a legacy completion is
`Echo from <model>: <prompt>`; a tuned model answers from what it learned (`memory`) when the
prompt is like one it was trained on. Usage counts are real tiktoken counts of the messages
(OpenAI's per-message overhead included) and of the reply. `max_tokens` /
`max_completion_tokens` cut the reply at that many tokens (`finish_reason: "length"`). A
function is called when `tool_choice` forces one (`"required"` or a named function), or when
tools are offered and the last user message names one of them. Streams send one word per chunk.
"""

from __future__ import annotations

import base64
import functools
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import tiktoken

from service.domain.tokens import encoding_for_model
from service.sandbox.errors import invalid
from service.sandbox.memory import Pair, recall
from service.sandbox.objects import JSON

FINGERPRINT = "fp_sandbox"
# Completion ids must be unique, not secret: a private PRNG keeps the hot path cheap
# (and out of reach of anything that seeds the global `random`).
_ids = random.Random()
_ALNUM = bytes.maketrans(b"+/", b"xZ")
COMPLETION_DETAILS = {
    "reasoning_tokens": 0,
    "audio_tokens": 0,
    "accepted_prediction_tokens": 0,
    "rejected_prediction_tokens": 0,
}


@dataclass(frozen=True)
class Reply:
    text: str | None
    finish_reason: str
    tokens: int
    tool_call: JSON | None = None


def new_id(prefix: str) -> str:
    return prefix + base64.b64encode(_ids.randbytes(18)).translate(_ALNUM).decode()


@functools.lru_cache(maxsize=256)
def _encoding(model: str) -> tiktoken.Encoding:
    return encoding_for_model(model)


def _tokens(text: str, model: str) -> int:
    return len(_encoding(model).encode_ordinary(text))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (p.get("text", "") for p in content if isinstance(p, dict))
        return " ".join(str(p) for p in parts if p)
    return ""


def _messages(body: JSON) -> list[JSON]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' must be a non-empty array", "messages")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise invalid("each message needs a 'role'", "messages")
    return messages


def prompt_tokens(messages: list[JSON], model: str) -> int:
    """OpenAI's counting: 3 per message, its role, content and name (+1), 3 to prime the reply."""
    encoding = _encoding(model)
    total = 3
    for message in messages:
        text = _text(message.get("content"))
        total += (
            3 + len(encoding.encode_ordinary(message["role"])) + len(encoding.encode_ordinary(text))
        )
        if isinstance(message.get("name"), str):
            total += 1 + len(encoding.encode_ordinary(message["name"]))
    return total


def _limit(body: JSON) -> int | None:
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise invalid("max_tokens must be a positive integer", "max_tokens")
    return limit


def _choices(body: JSON) -> int:
    n = body.get("n") or 1
    if not isinstance(n, int) or not 1 <= n <= 128:
        raise invalid("n must be an integer between 1 and 128", "n")
    return n


def _cut(text: str, model: str, limit: int | None) -> Reply:
    tokens = _encoding(model).encode_ordinary(text)
    if limit is None or len(tokens) <= limit:
        return Reply(text, "stop", len(tokens))
    return Reply(_encoding(model).decode(tokens[:limit]), "length", limit)


def _chosen_tool(body: JSON, last_text: str) -> JSON | None:
    offered = [t.get("function") for t in body.get("tools") or [] if isinstance(t, dict)]
    tools: list[JSON] = [
        t for t in offered if isinstance(t, dict) and isinstance(t.get("name"), str)
    ]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t["name"] == name), None)
    named = next((t for t in tools if t["name"] in last_text), None)
    return named or (tools[0] if choice == "required" else None)


def _arguments(tool: JSON, text: str) -> str:
    properties = (tool.get("parameters") or {}).get("properties") or {}
    defaults = {"string": text, "integer": 0, "number": 0, "boolean": False, "array": []}
    values = {name: defaults.get(spec.get("type")) for name, spec in properties.items()}
    return orjson.dumps(values).decode()


def _answer_text(model: str, prompt: str, memory: Sequence[Pair]) -> str:
    learned = recall(memory, prompt) if memory else None
    return f"Echo from {model}: {prompt}" if learned is None else learned


def chat_reply(body: JSON, model: str, memory: Sequence[Pair] = ()) -> tuple[list[JSON], Reply]:
    messages = _messages(body)
    users = [m for m in messages if m["role"] == "user"]
    last_text = _text(users[-1].get("content")) if users else ""
    tool = _chosen_tool(body, last_text)
    if tool is None:
        return messages, _cut(_answer_text(model, last_text, memory), model, _limit(body))
    arguments = _arguments(tool, last_text)
    function = {"name": tool["name"], "arguments": arguments}
    call: JSON = {"id": new_id("call_"), "type": "function", "function": function}
    return messages, Reply(None, "tool_calls", _tokens(tool["name"] + arguments, model), call)


def usage(prompt: int, completion: int) -> JSON:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": COMPLETION_DETAILS,
    }


def _message(reply: Reply) -> JSON:
    message: JSON = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_call:
        message["tool_calls"] = [reply.tool_call]
    message["annotations"] = []
    return message


def chat_completion(body: JSON, model: str, memory: Sequence[Pair] = ()) -> JSON:
    messages, reply = chat_reply(body, model, memory)
    n = _choices(body)
    choice = {"message": _message(reply), "logprobs": None, "finish_reason": reply.finish_reason}
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": i, **choice} for i in range(n)],
        "usage": usage(prompt_tokens(messages, model), reply.tokens * n),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def words(text: str) -> list[str]:
    pieces = text.split(" ")
    return [piece + " " for piece in pieces[:-1]] + [pieces[-1]]


def _deltas(reply: Reply) -> Iterator[JSON]:
    if reply.tool_call:
        call = reply.tool_call
        function = {"name": call["function"]["name"], "arguments": ""}
        yield {
            "tool_calls": [{"index": 0, "id": call["id"], "type": "function", "function": function}]
        }
        arguments = call["function"]["arguments"]
        yield {"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}
        return
    for piece in words(reply.text or ""):
        yield {"content": piece}


def chat_chunks(body: JSON, model: str, memory: Sequence[Pair] = ()) -> Iterator[bytes]:
    """The SSE events of a streamed chat completion, `[DONE]` included."""
    messages, reply = chat_reply(body, model, memory)
    n = _choices(body)
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    head: JSON = {"id": new_id("chatcmpl-"), "object": "chat.completion.chunk"}
    head |= {"created": int(time.time()), "model": model, "service_tier": "default"}
    head["system_fingerprint"] = FINGERPRINT
    extra = {"usage": None} if with_usage else {}

    def event(choices: list[JSON], **more: Any) -> bytes:
        return b"data: " + orjson.dumps({**head, "choices": choices, **extra, **more}) + b"\n\n"

    for index in range(n):
        role = {"role": "assistant", "content": "" if reply.text is not None else None}
        yield event([{"index": index, "delta": {**role, "refusal": None}, "finish_reason": None}])
        for delta in _deltas(reply):
            yield event([{"index": index, "delta": delta, "finish_reason": None}])
        yield event([{"index": index, "delta": {}, "finish_reason": reply.finish_reason}])
    if with_usage:
        yield event([], usage=usage(prompt_tokens(messages, model), reply.tokens * n))
    yield b"data: [DONE]\n\n"


def _prompts(body: JSON) -> list[str]:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return prompt
    if isinstance(prompt, list) and prompt:
        return [str(prompt)] if isinstance(prompt[0], int) else [str(p) for p in prompt]
    raise invalid("'prompt' must be a string or a non-empty array", "prompt")


def completion_replies(
    body: JSON, model: str, memory: Sequence[Pair] = ()
) -> tuple[int, list[Reply]]:
    """Prompt tokens, and one reply per (prompt, n) pair in OpenAI's choice order."""
    prompts, n = _prompts(body), _choices(body)
    limit = body.get("max_tokens", 16)
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise invalid("max_tokens must be a non-negative integer", "max_tokens")
    echo = bool(body.get("echo"))
    replies = []
    for prompt in prompts:
        reply = _cut(_answer_text(model, prompt, memory), model, limit)
        if echo:
            reply = Reply(prompt + (reply.text or ""), reply.finish_reason, reply.tokens)
        replies += [reply] * n
    return sum(_tokens(p, model) for p in prompts), replies


def completion(body: JSON, model: str, memory: Sequence[Pair] = ()) -> JSON:
    prompt, replies = completion_replies(body, model, memory)
    choices = [
        {"text": r.text, "index": i, "logprobs": None, "finish_reason": r.finish_reason}
        for i, r in enumerate(replies)
    ]
    return {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(prompt, sum(r.tokens for r in replies)),
        "system_fingerprint": FINGERPRINT,
    }


def completion_chunks(body: JSON, model: str, memory: Sequence[Pair] = ()) -> Iterator[bytes]:
    prompt, replies = completion_replies(body, model, memory)
    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    head: JSON = {"id": new_id("cmpl-"), "object": "text_completion", "created": int(time.time())}
    head |= {"model": model, "system_fingerprint": FINGERPRINT}
    extra = {"usage": None} if with_usage else {}

    def event(choices: list[JSON], **more: Any) -> bytes:
        return b"data: " + orjson.dumps({**head, "choices": choices, **extra, **more}) + b"\n\n"

    for index, reply in enumerate(replies):
        pieces = words(reply.text or "")
        for position, piece in enumerate(pieces):
            last = position == len(pieces) - 1
            finish = reply.finish_reason if last else None
            yield event(
                [{"text": piece, "index": index, "logprobs": None, "finish_reason": finish}]
            )
    if with_usage:
        yield event([], usage=usage(prompt, sum(r.tokens for r in replies)))
    yield b"data: [DONE]\n\n"
