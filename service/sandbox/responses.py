"""The sandbox's Responses API: deterministic responses, their typed stream events, and the
responses a run stores.

A response's text is `Echo from <model>: <the last user message's text>` (after a tool's
output: `Echo from <model>: <that output>`); with a `json_schema` text format it is a JSON
object of the schema's properties. A function tool is called when `tool_choice` forces one
(`"required"` or a named function) or when the last user message names it. `max_output_tokens`
cuts the text (`status: "incomplete"`). Reasoning models (`o*`, `gpt-5*`) add a reasoning item
and 16 reasoning tokens. Usage is real tiktoken counts; the tokens carried over from a
`previous_response_id` chain are reported as cached. Hosted tools are accepted and not run.

A stored response (`store` is on by default) can be retrieved (`stream=true` replays its
events after `starting_after`), listed for its input items, deleted; a `background` one is
`queued` until `background_seconds` have passed, and can be cancelled until then.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from service.sandbox.errors import ApiError, invalid
from service.sandbox.inference import _arguments, _cut, _tokens, new_id, words
from service.sandbox.objects import JSON

REASONING_TOKENS = 16
TERMINAL = frozenset({"completed", "incomplete", "cancelled", "failed"})


@dataclass
class StoredResponse:
    final: JSON  # the response as it is once it has run
    items: list[JSON]  # its input items, oldest first
    context_tokens: int  # the tokens a response chained after this one carries over
    background: bool = False
    ready_at: float = 0.0
    cancelled: bool = False
    created: float = field(default_factory=time.monotonic)

    def current(self) -> JSON:
        """The response as a retrieve sees it now."""
        if self.cancelled:
            return {**self.final, "status": "cancelled", "output": [], "completed_at": None}
        if self.background and time.monotonic() < self.ready_at:
            return {**self.final, "status": "queued", "output": [], "usage": None}
        return self.final

    @property
    def running(self) -> bool:
        return self.current()["status"] not in TERMINAL


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (p.get("text") for p in content if isinstance(p, dict))
        return " ".join(p for p in parts if isinstance(p, str) and p)
    return ""


def input_items(value: Any) -> list[JSON]:
    """The request's `input` as items with ids, as `input_items.list` shows them."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise invalid("'input' must be a string or an array", "input")
    items: list[JSON] = []
    for raw in value:
        if not isinstance(raw, dict):
            raise invalid("each input item must be an object", "input")
        item = dict(raw)
        kind = item.setdefault("type", "message")
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                item["content"] = [{"type": "input_text", "text": content}]
            item.setdefault("status", "completed")
            item.setdefault("id", new_id("msg_"))
        elif kind == "item_reference":
            raise invalid("item references are not supported by the sandbox", "input")
        else:
            item.setdefault("id", new_id("item_"))
        items.append(item)
    return items


def _item_text(item: JSON) -> str:
    if item.get("type") == "message":
        return _text_of(item.get("content"))
    for name in ("output", "arguments", "text"):
        if isinstance(item.get(name), str):
            return str(item[name])
    return ""


def _function_tools(body: JSON) -> list[JSON]:
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid("'tools' must be an array", "tools")
    return [
        tool
        for tool in tools
        if isinstance(tool, dict)
        and tool.get("type") == "function"
        and isinstance(tool.get("name"), str)
    ]


def _chosen_tool(body: JSON, last_text: str) -> JSON | None:
    tools = _function_tools(body)
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        return next((t for t in tools if t["name"] == choice.get("name")), None)
    named = next((t for t in tools if t["name"] in last_text), None)
    return named or (tools[0] if choice == "required" else None)


def _schema_text(body: JSON, fallback: str) -> str | None:
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    return _arguments({"parameters": fmt.get("schema") or {}}, fallback)


def _limit(body: JSON) -> int | None:
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 16):
        raise invalid("max_output_tokens must be an integer of at least 16", "max_output_tokens")
    return limit


def _reasons(model: str) -> bool:
    base = model.split(":")[1] if model.startswith("ft:") else model
    return base.startswith(("o1", "o3", "o4", "gpt-5"))


def _usage(input_tokens: int, cached: int, output: int, reasoning: int) -> JSON:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input_tokens + output,
    }


def _output_message(text: str) -> JSON:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {
        "type": "message",
        "id": new_id("msg_"),
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }


def create(
    body: JSON, model: str, stored: dict[str, StoredResponse], background_seconds: float
) -> tuple[JSON, StoredResponse | None]:
    """The response a create makes, and what the run keeps of it (None when not stored)."""
    items = input_items(body.get("input"))
    previous_id = body.get("previous_response_id")
    previous: StoredResponse | None = None
    if previous_id is not None:
        previous = stored.get(previous_id) if isinstance(previous_id, str) else None
        if previous is None:
            raise ApiError(
                400,
                f"Previous response with id '{previous_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid("'instructions' must be a string", "instructions")
    store = body.get("store", True) is not False
    background = body.get("background") is True
    if background and not store:
        raise invalid("Background mode requires 'store' to be true.", "background")

    texts = [instructions or ""] + [_item_text(item) for item in items]
    own_tokens = sum(_tokens(text, model) for text in texts if text) + 4 * len(items)
    cached = previous.context_tokens if previous is not None else 0
    last = items[-1] if items else {}
    last_text = _item_text(last) if last else ""
    after_tool = last.get("type") in ("function_call_output", "custom_tool_call_output")
    tool = None if after_tool else _chosen_tool(body, last_text)

    output: list[JSON] = []
    reasoning = REASONING_TOKENS if _reasons(model) else 0
    if reasoning:
        output.append({"type": "reasoning", "id": new_id("rs_"), "summary": []})
    status, incomplete = "completed", None
    if tool is not None:
        arguments = _arguments(tool, last_text)
        call = {
            "type": "function_call",
            "id": new_id("fc_"),
            "call_id": new_id("call_"),
            "name": tool["name"],
            "arguments": arguments,
            "status": "completed",
        }
        output.append(call)
        produced = _tokens(tool["name"] + arguments, model)
    else:
        echo = f"Echo from {model}: {last_text}"
        text = _schema_text(body, last_text) or echo
        reply = _cut(text, model, _limit(body))
        if reply.finish_reason == "length":
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        output.append(_output_message(reply.text or ""))
        produced = reply.tokens
    now = time.time()
    response: JSON = {
        "id": new_id("resp_"),
        "object": "response",
        "created_at": int(now),
        "status": status,
        "background": background,
        "completed_at": int(now),
        "error": None,
        "incomplete_details": incomplete,
        "instructions": instructions,
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": previous_id,
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": store,
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": _usage(own_tokens + cached, cached, produced + reasoning, reasoning),
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
    kept = None
    if store:
        context = own_tokens + cached + produced
        ready_at = time.monotonic() + (background_seconds if background else 0.0)
        kept = StoredResponse(response, items, context, background, ready_at)
        stored[response["id"]] = kept
        if background:
            return kept.current(), kept
    return response, kept


def cancel(kept: StoredResponse) -> JSON:
    if not kept.background:
        raise invalid("Only responses created with background mode can be cancelled.")
    if kept.running:
        kept.cancelled = True  # cancelled before it produced anything: its input is billed
        usage = kept.final["usage"]
        cached = usage["input_tokens_details"]["cached_tokens"]
        kept.final = {**kept.final, "usage": _usage(usage["input_tokens"], cached, 0, 0)}
    return kept.current()


def list_items(kept: StoredResponse, query: dict[str, str]) -> JSON:
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("order must be 'asc' or 'desc'", "order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise invalid("limit must be an integer", "limit") from None
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", "limit")
    items = kept.items if order == "asc" else kept.items[::-1]
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page, more = items[:limit], len(items) > limit
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": more,
    }


def deleted(response_id: str) -> JSON:
    return {"id": response_id, "object": "response.deleted", "deleted": True}


# --- stream events --------------------------------------------------------------------------


def _event(kind: str, sequence: int, **fields: Any) -> bytes:
    data = orjson.dumps({"type": kind, "sequence_number": sequence, **fields})
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def _item_events(index: int, item: JSON) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = item.get("type")
    if kind == "message":
        part = item["content"][0]
        text = part["text"]
        opened = {**item, "status": "in_progress", "content": []}
        yield "response.output_item.added", {"output_index": index, "item": opened}
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        empty = {**part, "text": ""}
        yield "response.content_part.added", {**where, "part": empty}
        for piece in words(text) if text else []:
            yield "response.output_text.delta", {**where, "delta": piece, "logprobs": []}
        yield "response.output_text.done", {**where, "text": text, "logprobs": []}
        yield "response.content_part.done", {**where, "part": part}
    elif kind == "function_call":
        opened = {**item, "status": "in_progress", "arguments": ""}
        yield "response.output_item.added", {"output_index": index, "item": opened}
        where = {"item_id": item["id"], "output_index": index}
        yield "response.function_call_arguments.delta", {**where, "delta": item["arguments"]}
        done = {**where, "name": item["name"], "arguments": item["arguments"]}
        yield "response.function_call_arguments.done", done
    else:
        yield "response.output_item.added", {"output_index": index, "item": item}
    yield "response.output_item.done", {"output_index": index, "item": item}


def events(response: JSON, starting_after: int | None = None) -> list[bytes]:
    """The typed events of a response's stream, `sequence_number` from 0; those after
    `starting_after` when given."""
    running = {**response, "status": "in_progress", "output": [], "usage": None}
    running["completed_at"] = None
    steps: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": running}),
        ("response.in_progress", {"response": running}),
    ]
    for index, item in enumerate(response["output"]):
        steps += list(_item_events(index, item))
    final = {
        "incomplete": "response.incomplete",
        "cancelled": "response.failed",
        "failed": "response.failed",
    }.get(response["status"], "response.completed")
    steps.append((final, {"response": response}))
    first = -1 if starting_after is None else starting_after
    return [_event(kind, seq, **fields) for seq, (kind, fields) in enumerate(steps) if seq > first]
