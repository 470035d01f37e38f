"""The Responses API's tenancy and PII policy: another org's stored response is unknown to every
method, and personal data planted in every input shape is redacted or blocked."""

from __future__ import annotations

import json
from typing import Any

import openai
import orjson
import pytest

from tests.api.proxy_helpers import Proxy, proxy, upstream

__all__ = ["proxy", "upstream"]

STORING = {"force_store_false": False}
EMAIL = "jane.doe@example.com"
UNKNOWN = "resp_" + "0" * 48


def error_of(call: Any) -> tuple[int, dict[str, Any]]:
    try:
        call()
    except openai.APIStatusError as error:
        body = error.body if isinstance(error.body, dict) else {}
        return error.status_code, body
    raise AssertionError("the call succeeded")


def test_another_org_cannot_reach_a_response_by_any_method(upstream: Proxy) -> None:
    _, owner = upstream.org(STORING, name="owner")
    _, stranger = upstream.org(STORING, name="stranger")
    with upstream.sdk(owner) as sdk:
        made = sdk.responses.create(model="gpt-4o-mini", input="mine", background=True)
    upstream.reset_upstream()

    def attempts(response_id: str) -> list[tuple[int, dict[str, Any]]]:
        with upstream.sdk(stranger) as sdk:
            calls = [
                lambda: sdk.responses.retrieve(response_id),
                lambda: list(sdk.responses.retrieve(response_id, stream=True)),
                lambda: sdk.responses.delete(response_id),
                lambda: sdk.responses.cancel(response_id),
                lambda: sdk.responses.input_items.list(response_id),
            ]
            return [error_of(call) for call in calls]

    theirs, unknown = attempts(made.id), attempts(UNKNOWN)
    normalised = [(s, {**b, "message": b["message"].replace(made.id, "<id>")}) for s, b in theirs]
    expected = [(s, {**b, "message": b["message"].replace(UNKNOWN, "<id>")}) for s, b in unknown]
    assert normalised == expected
    assert {status for status, _ in theirs} == {404}
    assert {body["code"] for _, body in theirs} == {"response_not_found"}
    with upstream.sdk(stranger) as sdk:
        status, body = error_of(
            lambda: sdk.responses.create(
                model="gpt-4o-mini", input="chain", previous_response_id=made.id
            )
        )
    assert status == 404 and body["param"] == "previous_response_id"
    assert upstream.upstream_requests("/v1/responses") == []  # nothing left the gateway
    with upstream.sdk(owner) as sdk:  # and the owner still has it
        assert sdk.responses.retrieve(made.id).id == made.id


def test_any_key_of_the_owning_org_may_use_its_responses(upstream: Proxy) -> None:
    org_id, key = upstream.org(STORING)
    other_key = upstream.gateway.create_key(org_id, "member", name="second")[1]
    with upstream.sdk(key) as sdk:
        made = sdk.responses.create(model="gpt-4o-mini", input="shared in the org")
    with upstream.sdk(other_key) as sdk:
        chained = sdk.responses.create(
            model="gpt-4o-mini", input="next", previous_response_id=made.id
        )
        assert sdk.responses.retrieve(made.id).id == made.id
    assert chained.previous_response_id == made.id


def test_malformed_ids_are_unknown_and_audited(upstream: Proxy) -> None:
    _, key = upstream.org(role="admin")
    with upstream.http(key) as http:
        for bad in ("not-a-response", "resp_x.y", "resp_" + "a" * 300):
            response = http.get(f"/v1/responses/{bad}")
            assert response.status_code == 404, bad
            assert response.json()["error"]["code"] == "response_not_found"
        audit = http.get("/v1/audit", params={"action": "responses.retrieve"}).json()["data"]
    assert len(audit) == 3 and {record["outcome"] for record in audit} == {"denied"}


def test_no_key_is_401_before_the_id_is_looked_at(upstream: Proxy) -> None:
    with upstream.http() as http:
        assert http.get(f"/v1/responses/{UNKNOWN}").status_code == 401
        assert http.get("/v1/responses/nonsense").status_code == 401


# --- PII in every input shape ----------------------------------------------------------------

WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}}
SHAPES: list[tuple[str, dict[str, Any], str]] = [
    ("input string", {"input": f"mail {EMAIL}"}, "input"),
    (
        "message content",
        {"input": [{"role": "user", "content": f"mail {EMAIL}"}]},
        "input[0].content",
    ),
    (
        "input_text part",
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": EMAIL}]}]},
        "input[0].content[0].text",
    ),
    ("instructions", {"input": "hi", "instructions": f"Sign as {EMAIL}"}, "instructions"),
    (
        "tool description",
        {
            "input": "hi",
            "tools": [
                {
                    "type": "function",
                    "name": "lookup",
                    "description": f"Ask {EMAIL}",
                    "parameters": WEATHER_PARAMS,
                }
            ],
        },
        "tools[0].description",
    ),
    (
        "tool parameter",
        {
            "input": "hi",
            "tools": [
                {
                    "type": "function",
                    "name": "lookup",
                    "parameters": {
                        "type": "object",
                        "properties": {"who": {"type": "string", "description": EMAIL}},
                    },
                }
            ],
        },
        "tools[0].parameters.properties.who.description",
    ),
    (
        "function call arguments",
        {
            "input": [
                {
                    "type": "function_call",
                    "call_id": "call_1",
                    "name": "lookup",
                    "arguments": json.dumps({"email": EMAIL}),
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "ok"},
            ]
        },
        "input[0].arguments.email",
    ),
    (
        "tool output",
        {
            "input": [
                {"type": "function_call_output", "call_id": "call_1", "output": f"It is {EMAIL}"}
            ]
        },
        "input[0].output",
    ),
    (
        "tool output as JSON",
        {
            "input": [
                {
                    "type": "function_call_output",
                    "call_id": "call_1",
                    "output": json.dumps({"owner": {"email": EMAIL}}),
                }
            ]
        },
        "input[0].output.owner.email",
    ),
    (
        "assistant output text",
        {
            "input": [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": f"Write to {EMAIL}"}],
                },
                {"role": "user", "content": "thanks"},
            ]
        },
        "input[0].content[0].text",
    ),
    (
        "reasoning summary",
        {
            "input": [
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": f"user is {EMAIL}"}],
                },
                {"role": "user", "content": "go on"},
            ]
        },
        "input[0].summary[0].text",
    ),
    (
        "text format schema",
        {
            "input": "hi",
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "contact",
                    "schema": {
                        "type": "object",
                        "properties": {"name": {"type": "string", "description": f"{EMAIL}"}},
                    },
                }
            },
        },
        "text.format.schema.properties.name.description",
    ),
]


@pytest.mark.parametrize(("body", "path"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_pii_in_every_input_shape_is_redacted(
    upstream: Proxy, body: dict[str, Any], path: str
) -> None:
    _, key = upstream.org({"pii": "redact"})
    with upstream.http(key) as http:
        response = http.post("/v1/responses", json={"model": "gpt-4o-mini", **body})
    assert response.status_code == 200, response.text
    [sent] = upstream.upstream_bodies("/v1/responses")
    text = orjson.dumps(sent).decode()
    assert EMAIL not in text and "[EMAIL]" in text


@pytest.mark.parametrize(("body", "path"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_pii_in_every_input_shape_is_blocked(
    upstream: Proxy, body: dict[str, Any], path: str
) -> None:
    _, key = upstream.org({"pii": "block"})
    with upstream.http(key) as http:
        response = http.post("/v1/responses", json={"model": "gpt-4o-mini", **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "pii_blocked" and error["param"] == path
    assert EMAIL not in response.text
    assert upstream.upstream_bodies("/v1/responses") == []


def test_images_and_files_in_input_need_opaque_parts(upstream: Proxy) -> None:
    _, key = upstream.org()
    image = {"type": "input_image", "image_url": "https://example.com/cat.png"}
    body = {
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "what?"}, image]}],
    }
    with upstream.http(key) as http:
        response = http.post("/v1/responses", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "opaque_content_refused"
