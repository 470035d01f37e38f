"""The PII policy over whole request bodies: every field the model reads, by JSON path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.domain.inference.request import scan_json
from service.domain.pii import detect as pii
from service.domain.tenancy.policy import Policy
from service.errors import InvalidRequest, PayloadTooLarge
from tests.unit.test_inference import run

EMAIL = "bob.smith@example.com"


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": list(messages)} | fields


USER = {"role": "user", "content": "hello"}

# Each body carries EMAIL in one field the first release did not scan, at the path named.
UNCOVERED: list[tuple[str, dict[str, Any], str]] = [
    (
        "tool call arguments",
        chat(
            USER,
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"to": EMAIL})},
                    }
                ],
            },
        ),
        "messages[1].tool_calls[0].function.arguments.to",
    ),
    ("message name", chat({"role": "user", "name": EMAIL, "content": "hi"}), "messages[0].name"),
    (
        "tool description",
        chat(USER, tools=[{"type": "function", "function": {"name": "f", "description": EMAIL}}]),
        "tools[0].function.description",
    ),
    (
        "nested parameter description",
        chat(
            USER,
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {
                            "type": "object",
                            "properties": {"to": {"type": "string", "description": EMAIL}},
                        },
                    },
                }
            ],
        ),
        "tools[0].function.parameters.properties.to.description",
    ),
    (
        "json schema description",
        chat(
            USER,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object", "description": EMAIL}},
            },
        ),
        "response_format.json_schema.schema.description",
    ),
    (
        "prediction",
        chat(USER, prediction={"type": "content", "content": EMAIL}),
        "prediction.content",
    ),
    (
        "legacy function_call arguments",
        chat(
            USER,
            {"role": "assistant", "function_call": {"name": "f", "arguments": f"to {EMAIL}"}},
        ),
        "messages[1].function_call.arguments",
    ),
    ("refusal", chat(USER, {"role": "assistant", "refusal": EMAIL}), "messages[1].refusal"),
    (
        "text part that is not a string",
        chat({"role": "user", "content": [{"type": "text", "text": {"value": EMAIL}}]}),
        "messages[0].content[0].text.value",
    ),
    ("metadata", chat(USER, metadata={"note": EMAIL}), "metadata.note"),
]


@pytest.mark.parametrize(("_name", "body", "path"), UNCOVERED, ids=[u[0] for u in UNCOVERED])
def test_block_names_the_path_of_every_field_the_model_reads(
    _name: str, body: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        run(body, pii="block")
    assert caught.value.code == "pii_blocked"
    assert caught.value.extra["envelope"]["pii_paths"] == [path]
    assert EMAIL not in caught.value.message


@pytest.mark.parametrize(("_name", "body", "_path"), UNCOVERED, ids=[u[0] for u in UNCOVERED])
def test_redact_leaves_no_planted_value_anywhere(
    _name: str, body: dict[str, Any], _path: str
) -> None:
    prepared = run(body)
    sent = json.dumps(prepared.body)
    assert EMAIL not in sent and "[EMAIL]" in sent
    assert prepared.pii_found == {"EMAIL": 1}


def test_legacy_suffix_and_nested_prompts_are_scanned() -> None:
    body = {"model": "davinci-002", "prompt": [["deep", EMAIL]], "suffix": f"end {EMAIL}"}
    prepared = run(body, "completions")
    assert prepared.body["prompt"] == [["deep", "[EMAIL]"]]
    assert prepared.body["suffix"] == "end [EMAIL]"


def test_arguments_stay_valid_json_after_redaction() -> None:
    arguments = json.dumps({"to": EMAIL, "cc": ["call 415-555-0123"], "n": 3})
    body = chat(
        USER,
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
            ],
        },
    )
    prepared = run(body)
    sent = prepared.body["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"to": "[EMAIL]", "cc": ["call [PHONE]"], "n": 3}


def test_schema_property_names_are_content() -> None:
    schema = {"type": "object", "properties": {EMAIL: {"type": "string"}}, "required": [EMAIL]}
    body = chat(USER, tools=[{"type": "function", "function": {"name": "f", "parameters": schema}}])
    with pytest.raises(InvalidRequest) as caught:
        run(body, pii="block")
    paths = caught.value.extra["envelope"]["pii_paths"]
    assert "tools[0].function.parameters.properties (a property name)" in paths
    redacted = run(body).body["tools"][0]["function"]["parameters"]
    assert redacted["properties"] == {"[EMAIL]": {"type": "string"}}
    assert redacted["required"] == ["[EMAIL]"]


def test_structural_fields_are_not_rewritten() -> None:
    body = chat(
        {"role": "tool", "tool_call_id": "call_415-555-0123", "content": "done"},
        user="bob@example.com",
    )
    prepared = run(body)
    assert prepared.body["messages"][0]["tool_call_id"] == "call_415-555-0123"
    assert prepared.body["user"].startswith("tg-")


@pytest.mark.parametrize(
    ("part", "path"),
    [
        (
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            "messages[0].content[0]",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            "messages[0].content[0]",
        ),
        (
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "JVBERi0="}},
            "messages[0].content[0]",
        ),
        ({"type": "text", "text": "data:text/plain;base64,Ym9i"}, "messages[0].content[0].text"),
    ],
)
def test_opaque_parts_are_refused_unless_the_policy_allows(part: dict[str, Any], path: str) -> None:
    body = chat({"role": "user", "content": [part]})
    for mode in ("redact", "block"):
        with pytest.raises(InvalidRequest) as caught:
            run(json.loads(json.dumps(body)), pii=mode)
        assert (caught.value.code, caught.value.param) == ("opaque_content_refused", path)
    assert run(json.loads(json.dumps(body)), pii="allow").body["messages"] == body["messages"]
    allowed = run(json.loads(json.dumps(body)), opaque_parts="allow")
    assert allowed.body["messages"] == body["messages"]


def test_an_allowed_file_part_still_has_its_filename_scanned() -> None:
    part = {"type": "file", "file": {"filename": f"{EMAIL} invoice.pdf", "file_data": "JVBERi0="}}
    prepared = run(chat({"role": "user", "content": [part]}), opaque_parts="allow")
    assert prepared.body["messages"][0]["content"][0]["file"]["filename"] == "[EMAIL] invoice.pdf"


def test_deeply_nested_bodies_are_walked_without_recursion() -> None:
    deep: Any = EMAIL
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(InvalidRequest) as caught:
        scan_json({"x": deep}, Policy(pii="block"), None, param="x")
    assert caught.value.code == "pii_blocked"


# --- the whole answer under max_output_tokens ---------------------------------------------------


def test_n_shares_the_output_cap() -> None:
    prepared = run(chat(USER, n=4, max_tokens=100), max_output_tokens=100)
    assert prepared.body["max_tokens"] == 25 and prepared.choices == 4
    filled = run(chat(USER, n=3), max_output_tokens=100)
    assert filled.body["max_completion_tokens"] == 33
    with pytest.raises(InvalidRequest) as caught:
        run(chat(USER, n=128), max_output_tokens=100)
    assert caught.value.param == "n"


def test_best_of_counts_against_the_output_cap() -> None:
    body = {"model": "davinci-002", "prompt": "x", "best_of": 20, "max_tokens": 100}
    prepared = run(body, "completions", max_output_tokens=100)
    assert prepared.body["max_tokens"] == 5 and prepared.choices == 20
    batch = {"model": "davinci-002", "prompt": ["a", "b"], "n": 2, "best_of": 4}
    assert run(batch, "completions", max_output_tokens=80).body["max_tokens"] == 10


@pytest.mark.parametrize(("name", "value"), [("n", 0), ("n", 129), ("best_of", 21), ("n", "2")])
def test_choice_counts_outside_openais_limits_are_refused(name: str, value: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        run({"model": "davinci-002", "prompt": "x", name: value}, "completions")
    assert caught.value.param == name


# --- the scan budget ----------------------------------------------------------------------------


def test_a_scan_past_its_budget_is_refused_as_too_large() -> None:
    budget = pii.ScanBudget(max_chars=10_000_000, max_findings=50, max_candidates=10_000)
    body = chat({"role": "user", "content": "call 415 555 2671 now " * 200})
    with pytest.raises(PayloadTooLarge) as caught:
        scan_json(body, Policy(), budget, param="messages")
    assert caught.value.code == "pii_scan_budget_exceeded"
    small = pii.ScanBudget(max_chars=100, max_findings=50, max_candidates=10_000)
    with pytest.raises(PayloadTooLarge, match="characters"):
        scan_json({"x": "a" * 101}, Policy(), small, param="x")
