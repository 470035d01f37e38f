"""What comes back: usage, texts, the SSE relay, and what the audit keeps of content."""

from __future__ import annotations

from typing import Any

import orjson

from service.domain.inference.output import (
    SseRelay,
    Usage,
    completion_texts,
    logged_content,
    usage_of,
)
from service.domain.tenancy.policy import Policy


def event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return f"data: {data}\n\n".encode()


def chunk(text: str, index: int = 0) -> dict[str, Any]:
    choice = {"index": index, "delta": {"content": text}, "finish_reason": None}
    return {"object": "chat.completion.chunk", "choices": [choice], "usage": None}


USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
STREAM = [
    event(chunk("Hel")),
    event(chunk("lo")),
    event({"object": "chat.completion.chunk", "choices": [], "usage": USAGE}),
    event("[DONE]"),
]


def relay_all(relay: SseRelay, data: bytes, size: int) -> bytes:
    out = b"".join(relay.feed(data[i : i + size]) for i in range(0, len(data), size))
    return out + relay.flush()


def test_events_pass_whole_however_the_bytes_arrive() -> None:
    data = b"".join(STREAM)
    for size in (1, 7, 64, len(data)):
        relay = SseRelay("chat", forward_usage=True, collect_text=False)
        assert relay_all(relay, data, size) == data
        assert relay.usage == Usage(7, 3)


def test_the_usage_only_event_reaches_only_a_client_that_asked() -> None:
    relay = SseRelay("chat", forward_usage=False, collect_text=False)
    out = relay_all(relay, b"".join(STREAM), 5)
    assert out == STREAM[0] + STREAM[1] + STREAM[3]
    assert relay.usage == Usage(7, 3)


def test_usage_riding_on_a_content_chunk_is_kept_and_forwarded() -> None:
    both = event(chunk("x") | {"usage": USAGE})
    relay = SseRelay("chat", forward_usage=False, collect_text=False)
    assert relay.feed(both) == both
    assert relay.usage == Usage(7, 3)


def test_texts_are_collected_per_choice_when_asked() -> None:
    data = event(chunk("a", 0)) + event(chunk("b", 1)) + event(chunk("c", 0)) + event("[DONE]")
    relay = SseRelay("chat", forward_usage=False, collect_text=True)
    relay_all(relay, data, 3)
    assert relay.completions() == ["ac", "b"]


def test_legacy_stream_texts() -> None:
    data = event({"choices": [{"index": 0, "text": "one "}]}) + event(
        {"choices": [{"index": 0, "text": "two"}]}
    )
    relay = SseRelay("completions", forward_usage=False, collect_text=True)
    relay_all(relay, data, 4)
    assert relay.completions() == ["one two"]


def test_crlf_streams_are_understood() -> None:
    data = b"".join(STREAM).replace(b"\n", b"\r\n")
    relay = SseRelay("chat", forward_usage=False, collect_text=False)
    out = relay_all(relay, data, 9)
    assert b'"choices":[]' not in out and relay.usage == Usage(7, 3)


def test_a_stream_without_usage_is_estimated() -> None:
    relay = SseRelay("chat", forward_usage=False, collect_text=False)
    relay_all(relay, STREAM[0] + STREAM[1] + STREAM[3], 100)
    assert relay.usage is None
    assert relay.estimated_usage(12) == Usage(12, 2, estimated=True)


def test_usage_and_texts_of_whole_completions() -> None:
    body = {
        "choices": [{"message": {"content": "hi"}}, {"message": {"content": None}}],
        "usage": USAGE,
    }
    assert usage_of(body) == Usage(7, 3)
    assert usage_of({"usage": {"prompt_tokens": "7"}}) is None
    assert completion_texts(body, "chat") == ["hi", ""]
    assert completion_texts({"choices": [{"text": "t"}]}, "completions") == ["t"]


def test_logged_content_follows_log_content() -> None:
    sent = {"messages": [{"role": "user", "content": "mail bob@example.com"}]}
    completions = ["reach 415-555-0123"]
    assert logged_content(Policy(log_content="none"), "chat", sent, completions) is None
    full = logged_content(Policy(log_content="full"), "chat", sent, completions)
    assert full == {
        "messages": [{"role": "user", "content": "mail bob@example.com"}],
        "completion": completions,
    }
    redacted = logged_content(Policy(log_content="redacted"), "chat", sent, completions)
    assert redacted == {
        "messages": [{"role": "user", "content": "mail [EMAIL]"}],
        "completion": ["reach [PHONE]"],
    }
    legacy = logged_content(Policy(log_content="full"), "completions", {"prompt": "p"}, ["c"])
    assert legacy == {"prompt": ["p"], "completion": ["c"]}
