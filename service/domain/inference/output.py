"""What comes back from a proxied call: its usage, its texts, and the stream relay; pure.

Usage comes in three shapes (`UsageShape`): chat and legacy completions (`prompt_tokens`,
`completion_tokens`, cached and reasoning tokens in their details), the Responses API
(`input_tokens`, `output_tokens`, the same details; in a stream, on the final event's response)
and embeddings (`prompt_tokens` only). Moderations report none.

`SseRelay` passes a server-sent event stream through as it arrives, whole events at a time. It
reads only the events that carry a usage object (found with one byte search per read, so the
common chunk costs no JSON parsing), keeps the final usage, and drops the usage-only event when
the client did not ask for it (the proxy always asks the upstream for one); Responses events
all pass, in order, untouched. It also reads the first event of a Responses stream when asked
(`want_id`), for the id of the response it creates. What the audit keeps
of prompts and completions follows the org's `log_content`: nothing, the texts with PII
redacted, or the texts as exchanged with the upstream (after the PII policy), clipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from service.domain.inference.request import SPECS, Api, UsageShape, prompt_texts
from service.domain.inference.responses import FINAL_EVENTS, response_id_of
from service.domain.pii import detect as pii
from service.domain.tenancy.policy import Policy

LOG_TEXT_LIMIT = 16_384
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_EVENT_END = b"\n\n"
_DELTA_EVENTS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})


@dataclass(frozen=True, slots=True)
class Usage:
    """Input (prompt) and output (completion) tokens; of them, cached input and reasoning."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def usage_of(payload: object, shape: UsageShape = "chat") -> Usage | None:
    """The `usage` of an answer (a completion or chunk, a response or an event carrying one, an
    embeddings list), when it carries a complete one."""
    if shape == "responses" and isinstance(payload, dict):
        inner = payload.get("response")
        payload = inner if isinstance(inner, dict) else payload
    if shape == "none" or not isinstance(payload, dict):
        return None
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    names = _USAGE_NAMES[shape]
    prompt = usage.get(names[0])
    completion = usage.get(names[1]) if names[1] else 0
    if not _count(prompt) or not _count(completion):
        return None
    cached = _detail(usage, names[2], "cached_tokens")
    reasoning = _detail(usage, names[3], "reasoning_tokens")
    return Usage(prompt, completion, cached_tokens=cached, reasoning_tokens=reasoning)


# input, output, input details, output details
_USAGE_NAMES: dict[str, tuple[str, str, str, str]] = {
    "chat": (
        "prompt_tokens",
        "completion_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
    ),
    "responses": ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details"),
    "embeddings": ("prompt_tokens", "", "", ""),
}


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _detail(usage: dict[str, Any], group: str, name: str) -> int:
    details = usage.get(group) if group else None
    value = details.get(name) if isinstance(details, dict) else None
    return value if _count(value) else 0


def response_texts(payload: object) -> list[str]:
    """The output text of a response object (its messages' text, its calls' arguments)."""
    output = payload.get("output") if isinstance(payload, dict) else None
    texts: list[str] = []
    for item in output if isinstance(output, list) else []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("arguments"), str):
            texts.append(item["arguments"])
        content = item.get("content")
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return ["".join(texts)] if texts else []


def completion_texts(payload: object, api: Api) -> list[str]:
    """The text of each choice of a whole (non-streamed) completion; a response's output."""
    if api == "responses":
        return response_texts(payload)
    choices = payload.get("choices") if isinstance(payload, dict) else None
    texts: list[str] = []
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        if api == "chat":
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
        else:
            text = choice.get("text")
        texts.append(text if isinstance(text, str) else "")
    return texts


def _delta_text(choice: dict[str, Any], api: Api) -> str:
    if api == "completions":
        text = choice.get("text")
    else:
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else None
    return text if isinstance(text, str) else ""


class SseRelay:
    """Feed it upstream bytes; it returns what to send the client now."""

    def __init__(
        self, api: Api, *, forward_usage: bool, collect_text: bool, want_id: bool = False
    ) -> None:
        self.api = api
        self.shape = SPECS[api].usage
        self.forward_usage = forward_usage or self.shape == "responses"
        self.collect_text = collect_text
        self.usage: Usage | None = None
        self.events = 0
        self.texts: dict[int, list[str]] = {}
        self.response_id: str | None = None  # the response a Responses stream is about
        self.response_open = False  # ... and whether its final event has not come yet
        self._want_id = want_id
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(_EVENT_END)
        if end < 0:
            self._pending = data
            return b""
        ready, self._pending = data[: end + 2], data[end + 2 :]
        self.events += ready.count(_EVENT_END)
        if self._want_id:
            self._want_id = False
            self._find_id(ready)
        if self.collect_text:
            return b"".join(event for event in _events(ready) if self._keep(event))
        if not _USAGE_OBJECT.search(ready):
            return ready
        # only the events that carry usage are parsed (a Responses stream's last one)
        return b"".join(
            event
            for event in _events(ready)
            if not _USAGE_OBJECT.search(event) or self._keep(event)
        )

    def _find_id(self, ready: bytes) -> None:
        for event in _events(ready):
            if (found := response_id_of(_payload(event))) is not None:
                self.response_id, self.response_open = found, True
                return

    def flush(self) -> bytes:
        """Whatever is left when the upstream ends (a last event without its blank line)."""
        rest, self._pending = self._pending, b""
        return rest

    def estimated_usage(self, prompt_tokens: int) -> Usage:
        """For a stream that ended without its usage: about one token per streamed event."""
        return Usage(prompt_tokens, max(self.events - 1, 0), estimated=True)

    def completions(self) -> list[str]:
        return ["".join(self.texts[index]) for index in sorted(self.texts)]

    def _keep(self, event: bytes) -> bool:
        payload = _payload(event)
        if not isinstance(payload, dict):
            return True
        if self.collect_text:
            self._collect(payload)
        if self.shape == "responses" and payload.get("type") not in FINAL_EVENTS:
            return True
        usage = usage_of(payload, self.shape)
        if self.shape == "responses":
            self.response_open = False
        if usage is None:
            return True
        self.usage = usage
        return self.forward_usage or bool(payload.get("choices"))

    def _collect(self, payload: dict[str, Any]) -> None:
        if self.shape == "responses":
            if payload.get("type") in _DELTA_EVENTS and isinstance(payload.get("delta"), str):
                index = payload.get("output_index")
                key = index if isinstance(index, int) else 0
                self.texts.setdefault(key, []).append(payload["delta"])
            return
        choices = payload.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict) and isinstance(choice.get("index"), int):
                self.texts.setdefault(choice["index"], []).append(_delta_text(choice, self.api))


def _events(ready: bytes) -> list[bytes]:
    return [part + _EVENT_END for part in ready.split(_EVENT_END)[:-1]]


def _payload(event: bytes) -> object:
    lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
    data = b"\n".join(lines)
    if not data or data == b"[DONE]":
        return None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return None


# --- audit content -----------------------------------------------------------------------------


def _clip(text: str) -> str:
    return text if len(text) <= LOG_TEXT_LIMIT else text[:LOG_TEXT_LIMIT] + "…[clipped]"


def logged_content(
    policy: Policy, api: Api, sent: dict[str, Any], completions: list[str]
) -> dict[str, Any] | None:
    """What the audit record keeps of this call's texts under `log_content`."""
    if policy.log_content == "none":
        return None
    entities = tuple(policy.pii_entities)
    scrub = policy.log_content == "redacted"

    def keep(text: str) -> str:
        return _clip(pii.redact(text, entities)[0] if scrub and text else text)

    record: dict[str, Any] = {"completion": [keep(text) for text in completions]}
    if api != "chat":
        name = "prompt" if api == "completions" else "input"
        record[name] = [keep(text) for text in prompt_texts(sent, api)]
        return record
    record["messages"] = [
        {"role": message.get("role"), "content": keep(_message_text(message))}
        for message in sent["messages"]
    ]
    return record


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        return "\n".join(parts)
    return ""
