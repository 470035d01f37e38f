"""Checking chat `messages` (and `tools`) as OpenAI's fine-tuning expects them, and planning
how to count their tokens.

Owns the message rules: the error kinds of the fine-tuning data-prep recipe
(`message_missing_key`, `message_unrecognized_key`, `unrecognized_role`, `missing_content`,
`example_missing_assistant_message`) plus tunegate's stricter ones (`weight` only 0 or 1 and
only on assistant messages, well-formed `tool_calls`, `tool` messages answering an earlier call,
`tools` definitions). Messages never quote values: PII could be anywhere in them.

Token counting follows the recipe's `num_tokens_from_messages`: 3 tokens per message, the
tokens of its role, content and name, 1 more when named, and 3 to prime the reply. Tool calls
add the tokens of each function name and arguments string; `tools` add the tokens of their
compact JSON once per example. OpenAI renders tool definitions in its own syntax, so this is an
estimate of the same order, not an exact count; image parts count no tokens here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

ROLES = frozenset({"system", "user", "assistant", "tool", "function"})
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"}
)
CONTENT_PART_TYPES = frozenset({"text", "image_url"})
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3

_SAFE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")


@dataclass(slots=True)
class TokenPlan:
    """What to count for one example: fixed tokens plus the tokens of `texts`.

    The first `assistant_texts` entries are the assistant's, counted in both totals.
    """

    fixed: int = 0
    texts: list[str] = field(default_factory=list)
    assistant_texts: int = 0
    messages: int | None = None


@dataclass(slots=True)
class Problems:
    """The first message of each error kind found in one example."""

    found: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, message: str) -> None:
        self.found.setdefault(kind, message)


def describe_keys(keys: list[str]) -> str:
    shown = [key if _SAFE_KEY.fullmatch(key) else "<non-identifier key>" for key in keys[:5]]
    return ", ".join(shown)


def _content_text(content: object, where: str, problems: Problems) -> list[str] | None:
    """The text parts of a content value, or None when it is not valid content."""
    if isinstance(content, str):
        return [content] if content else None
    if not isinstance(content, list) or not content:
        return None
    texts: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str) or kind not in CONTENT_PART_TYPES:
            problems.add("invalid_content_part", f"{where}: content parts must be text or image")
        elif kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                problems.add("invalid_content_part", f"{where}: a text part needs a string text")
            else:
                texts.append(text)
    return texts


def _tool_calls(
    message: dict[str, Any], where: str, problems: Problems, call_ids: set[str]
) -> list[str]:
    """The texts of well-formed tool calls; their ids go into `call_ids`."""
    calls = message.get("tool_calls")
    texts: list[str] = []
    if not isinstance(calls, list) or not calls:
        problems.add("invalid_tool_calls", f"{where}: tool_calls must be a non-empty list")
        return texts
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if not (isinstance(call, dict) and isinstance(call.get("id"), str)) or not (
            isinstance(name, str) and isinstance(arguments, str)
        ):
            problems.add(
                "invalid_tool_calls",
                f"{where}: each tool call needs an id and a function with name and arguments",
            )
            continue
        call_ids.add(call["id"])
        texts += (name, arguments)
    return texts


def _function_call(message: dict[str, Any], where: str, problems: Problems) -> list[str]:
    call = message.get("function_call")
    if isinstance(call, dict):
        name, arguments = call.get("name"), call.get("arguments")
        if isinstance(name, str) and isinstance(arguments, str):
            return [name, arguments]
    problems.add("invalid_function_call", f"{where}: function_call needs name and arguments")
    return []


def _check_keys(message: dict[str, Any], role: object, where: str, problems: Problems) -> None:
    if "role" not in message or ("content" not in message and role != "assistant"):
        problems.add("message_missing_key", f"{where}: a message needs role and content")
    unknown = [key for key in message if key not in MESSAGE_KEYS]
    if unknown:
        problems.add(
            "message_unrecognized_key", f"{where}: unrecognized keys {describe_keys(unknown)}"
        )
    if not isinstance(role, str) or role not in ROLES:
        problems.add(
            "unrecognized_role", f"{where}: role must be one of {', '.join(sorted(ROLES))}"
        )
    if "name" in message and not isinstance(message["name"], str):
        problems.add("invalid_name", f"{where}: name must be a string")
    if "weight" in message and (
        role != "assistant" or type(message["weight"]) is not int or message["weight"] not in (0, 1)
    ):
        problems.add("invalid_weight", f"{where}: weight must be 0 or 1, on assistant messages")


def _message_texts(
    message: dict[str, Any], role: object, where: str, call_ids: set[str], problems: Problems
) -> list[str]:
    calls = "tool_calls" in message or "function_call" in message
    texts: list[str] = []
    if calls and role != "assistant":
        problems.add("invalid_tool_calls", f"{where}: only assistant messages make tool calls")
    elif "tool_calls" in message:
        texts += _tool_calls(message, where, problems, call_ids)
    elif "function_call" in message:
        texts += _function_call(message, where, problems)
    if role == "tool" and not _answers_a_call(message.get("tool_call_id"), call_ids):
        problems.add(
            "invalid_tool_call_id", f"{where}: tool_call_id must answer an earlier tool call"
        )
    content = message.get("content")
    if content is None and calls and role == "assistant":
        return texts
    content_texts = _content_text(content, where, problems)
    if content_texts is None:
        problems.add("missing_content", f"{where}: content must be a non-empty string or parts")
        return texts
    return content_texts + texts


def _answers_a_call(tool_call_id: object, call_ids: set[str]) -> bool:
    return isinstance(tool_call_id, str) and tool_call_id in call_ids


def check_messages(
    messages: object, problems: Problems, plan: TokenPlan, *, require_assistant: bool = True
) -> None:
    """Checks a chat `messages` list, adding its texts to `plan` (assistant texts first)."""
    if not isinstance(messages, list) or not messages:
        problems.add("missing_messages_list", "messages must be a non-empty list")
        return
    call_ids: set[str] = set()
    other: list[str] = []
    for number, message in enumerate(messages, start=1):
        where = f"message {number}"
        if not isinstance(message, dict):
            problems.add("invalid_message", f"{where}: a message must be a JSON object")
            continue
        role = message.get("role")
        _check_keys(message, role, where, problems)
        texts = _message_texts(message, role, where, call_ids, problems)
        plan.fixed += TOKENS_PER_MESSAGE + ("name" in message) * TOKENS_PER_NAME
        if role == "assistant":
            plan.texts[plan.assistant_texts : plan.assistant_texts] = texts
            plan.assistant_texts += len(texts)
        else:
            other += texts
        other += [role] if isinstance(role, str) else []
        if isinstance(message.get("name"), str):
            other.append(message["name"])
    plan.texts += other
    plan.fixed += TOKENS_REPLY_PRIMING
    plan.messages = (plan.messages or 0) + len(messages)
    if require_assistant and not any(
        isinstance(m, dict) and m.get("role") == "assistant" for m in messages
    ):
        problems.add("example_missing_assistant_message", "no assistant message")


def check_tools(example: dict[str, Any], problems: Problems, plan: TokenPlan) -> None:
    """Checks the optional `tools` / `functions` and `parallel_tool_calls` of an example."""
    for key in ("tools", "functions"):
        if key not in example:
            continue
        tools = example[key]
        valid = isinstance(tools, list) and all(_tool_ok(tool, key) for tool in tools)
        try:
            text = orjson.dumps(tools).decode() if valid else None
        except orjson.JSONEncodeError:  # nested deeper than orjson writes
            text = None
        if text is None:
            problems.add("invalid_tools", f"{key} must be a list of function definitions")
        else:
            plan.texts.append(text)
    if "parallel_tool_calls" in example and not isinstance(example["parallel_tool_calls"], bool):
        problems.add("invalid_parallel_tool_calls", "parallel_tool_calls must be true or false")


def _tool_ok(tool: object, key: str) -> bool:
    if key == "tools":
        if not isinstance(tool, dict) or tool.get("type") != "function":
            return False
        tool = tool.get("function")
    return isinstance(tool, dict) and isinstance(tool.get("name"), str)
