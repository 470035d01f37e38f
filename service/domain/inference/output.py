"""What comes back from a completion: its usage, its texts, and the stream relay; pure.

`SseRelay` passes a server-sent event stream through as it arrives, whole events at a time. It
reads only the events that carry a usage object (found with one byte search per read, so the
common chunk costs no JSON parsing), keeps the final usage, and drops the usage-only event when
the client did not ask for it (the proxy always asks the upstream for one). What the audit keeps
of prompts and completions follows the org's `log_content`: nothing, the texts with PII
redacted, or the texts as exchanged with the upstream (after the PII policy), clipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from service.domain.inference.request import Api, prompt_texts
from service.domain.pii import detect as pii
from service.domain.tenancy.policy import Policy

LOG_TEXT_LIMIT = 16_384
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_EVENT_END = b"\n\n"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def usage_of(payload: object) -> Usage | None:
    """The `usage` of a completion or chunk object, when it carries a complete one."""
    if not isinstance(payload, dict):
        return None
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion)


def completion_texts(payload: object, api: Api) -> list[str]:
    """The text of each choice of a whole (non-streamed) completion."""
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

    def __init__(self, api: Api, *, forward_usage: bool, collect_text: bool) -> None:
        self.api = api
        self.forward_usage = forward_usage
        self.collect_text = collect_text
        self.usage: Usage | None = None
        self.events = 0
        self.texts: dict[int, list[str]] = {}
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
        if not self.collect_text and not _USAGE_OBJECT.search(ready):
            return ready
        return b"".join(event for event in _events(ready) if self._keep(event))

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
        usage = usage_of(payload)
        if usage is None:
            return True
        self.usage = usage
        return self.forward_usage or bool(payload.get("choices"))

    def _collect(self, payload: dict[str, Any]) -> None:
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
    if api == "completions":
        record["prompt"] = [keep(text) for text in prompt_texts(sent, api)]
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
