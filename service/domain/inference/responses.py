"""The Responses API's own rules: its body, its tools, and its stored state; pure.

Hosted tools that make the upstream fetch or search on the caller's behalf (`web_search` in all
its versions, `file_search`, `code_interpreter`, remote MCP servers) go out only when the org's
policy lists their type in `hosted_tools`. Tools the client runs itself (functions, custom
tools, computer use, shells, patches) and image generation always may; a tool type the gateway
does not know is refused, so a new hosted tool is never let through by default.

A response the upstream stores belongs to the org that made it. Upstream, every org shares one
project, so the gateway keeps the owner of each stored response id and answers another org's id
(`previous_response_id`, retrieve, delete, cancel, input items) as an unknown one. Two ways to
reach stored state that the gateway cannot attribute are refused: a `conversation` (the gateway
does not proxy the Conversations API, so any conversation id was made elsewhere) and
`item_reference` input items (they name items of stored responses by their own ids; send
`previous_response_id` instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from service.domain.tenancy.policy import HostedTool, Policy
from service.errors import InvalidRequest

StoredOp = Literal["retrieve", "delete", "cancel", "input_items"]

# Tool types that make the upstream reach out, and the policy type that admits each.
HOSTED_TOOLS: dict[str, HostedTool] = {
    "web_search": "web_search",
    "web_search_2025_08_26": "web_search",
    "web_search_preview": "web_search",
    "web_search_preview_2025_03_11": "web_search",
    "file_search": "file_search",
    "code_interpreter": "code_interpreter",
    "mcp": "mcp",
}
# Tool types whose calls the client executes, or that reach nothing outside the upstream.
LOCAL_TOOLS = frozenset(
    {
        "function",
        "custom",
        "computer",
        "computer_use_preview",
        "local_shell",
        "shell",
        "apply_patch",
        "image_generation",
    }
)
# A response still running upstream (created with `background: true`): its usage comes later.
OPEN_STATUSES = frozenset({"queued", "in_progress"})
# The events of a stream that carry the finished response, usage included.
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass(frozen=True, slots=True)
class StoredOpSpec:
    method: str
    suffix: str  # after /responses/{id}
    action: str  # the audit action
    query: tuple[str, ...]  # the query parameters passed on


STORED_OPS: dict[StoredOp, StoredOpSpec] = {
    "retrieve": StoredOpSpec(
        "GET",
        "",
        "responses.retrieve",
        ("include", "include[]", "include_obfuscation", "starting_after", "stream"),
    ),
    "delete": StoredOpSpec("DELETE", "", "responses.delete", ()),
    "cancel": StoredOpSpec("POST", "/cancel", "responses.cancel", ()),
    "input_items": StoredOpSpec(
        "GET",
        "/input_items",
        "responses.input_items.list",
        ("after", "before", "include", "include[]", "limit", "order"),
    ),
}


def stored_path(op: StoredOp, response_id: str) -> str:
    return f"/responses/{response_id}{STORED_OPS[op].suffix}"


def stored_query(op: StoredOp, params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The query parameters of a stored-response call that go upstream (the known ones)."""
    known = STORED_OPS[op].query
    return [(name, value) for name, value in params if name in known]


def streams(op: StoredOp, query: list[tuple[str, str]]) -> bool:
    """Whether a stored-response call answers with events (retrieve with `stream=true`)."""
    return op == "retrieve" and any(
        name == "stream" and value.lower() == "true" for name, value in query
    )


def check_responses_body(body: dict[str, Any]) -> None:
    """The Responses API's shape checks, beyond `model`."""
    value = body.get("input")
    if value is not None and not isinstance(value, str | list):
        raise InvalidRequest("'input' must be a string or an array of items.", param="input")
    previous = body.get("previous_response_id")
    if previous is not None and not isinstance(previous, str):
        raise InvalidRequest(
            "'previous_response_id' must be a string.", param="previous_response_id"
        )
    if body.get("conversation") is not None:
        raise InvalidRequest(
            "Conversations are not available through this gateway; chain responses with "
            "'previous_response_id' instead.",
            param="conversation",
            code="unsupported_parameter",
        )
    for index, item in enumerate(value if isinstance(value, list) else []):
        if isinstance(item, dict) and item.get("type") == "item_reference":
            raise InvalidRequest(
                "Item references are not available through this gateway; send the items "
                "themselves, or chain with 'previous_response_id'.",
                param=f"input[{index}]",
                code="unsupported_parameter",
            )
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")


def check_tools(body: dict[str, Any], policy: Policy) -> None:
    """Refuse a hosted tool the policy does not allow, and any tool type not known here."""
    allowed = set(policy.hosted_tools)
    pending = [(tool, f"tools[{i}]") for i, tool in enumerate(body.get("tools") or [])]
    while pending:
        tool, where = pending.pop()
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "namespace":
            inner = tool.get("tools")
            inner = inner if isinstance(inner, list) else []
            pending += [(item, f"{where}.tools[{i}]") for i, item in enumerate(inner)]
            continue
        if kind in LOCAL_TOOLS:
            continue
        hosted = HOSTED_TOOLS.get(kind) if isinstance(kind, str) else None
        if hosted is None:
            raise InvalidRequest(
                f"The tool type {kind!r} is not one this gateway can vet, so it is refused.",
                param=where,
                code="tool_not_allowed",
            )
        if hosted not in allowed:
            raise InvalidRequest(
                f"The hosted tool {kind!r} is not allowed by this org's policy "
                f"(hosted_tools does not list {hosted!r}).",
                param=where,
                code="tool_not_allowed",
            )


def response_id_of(payload: object) -> str | None:
    """The id of a response object (or of the response an event carries)."""
    if isinstance(payload, dict) and isinstance(payload.get("response"), dict):
        payload = payload["response"]
    if isinstance(payload, dict) and payload.get("object") == "response":
        found = payload.get("id")
        return found if isinstance(found, str) else None
    return None


def is_open(payload: object) -> bool:
    """Whether a response object is still running upstream (usage not known yet)."""
    return isinstance(payload, dict) and payload.get("status") in OPEN_STATUSES


def will_store(body: dict[str, Any]) -> bool:
    """Whether the upstream keeps the response this (prepared) body creates."""
    return body.get("store") is not False
