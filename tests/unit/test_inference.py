"""The proxy's policy on a request body: checks, routing, PII, store, caps, users, streams."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.inference.request import (
    check_body,
    hash_user,
    prepare,
    prompt_texts,
    route_model,
    scan_pii,
)
from service.domain.tenancy.policy import Policy
from service.errors import InvalidRequest

KEY = b"k" * 32
TUNED = "ft:gpt-4o-mini-2024-07-18:acme::abc123"


def chat(*contents: Any, **fields: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": content} for content in contents]
    return {
        "model": "gpt-4o-mini",
        "messages": messages or [{"role": "user", "content": "hi"}],
    } | fields


def run(body: dict[str, Any], api: str = "chat", **policy: Any) -> Any:
    rules = Policy(**policy)
    prepared = prepare(
        check_body(body, api),  # type: ignore[arg-type]
        api,  # type: ignore[arg-type]
        rules,
        model=body["model"],
        org_id="org_a",
        user_key=KEY,
    )
    scan_pii(prepared, rules)
    return prepared


# --- checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([1, 2], None),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": ["hello"]}, "messages"),
    ],
)
def test_a_malformed_chat_body_names_its_parameter(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_body(body, "chat")
    assert caught.value.param == param


def test_a_legacy_body_needs_a_prompt() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check_body({"model": "davinci-002"}, "completions")
    assert caught.value.param == "prompt"
    assert check_body({"model": "m", "prompt": ["a", "b"]}, "completions")


# --- routing -----------------------------------------------------------------------------------


def test_routing_prefers_aliases_then_own_tuned_models_then_allowed_bases() -> None:
    policy = Policy(allowed_models=["gpt-4o-mini"])
    tuned = {TUNED: object()}
    assert route_model("support", policy, tuned, {"support": TUNED}) == TUNED
    assert route_model(TUNED, policy, tuned, {}) == TUNED
    assert route_model("gpt-4o-mini", policy, tuned, {}) == "gpt-4o-mini"
    assert route_model("gpt-4o", policy, tuned, {}) is None


def test_a_tuned_model_that_is_not_the_orgs_never_routes() -> None:
    other = "ft:gpt-4o-mini-2024-07-18:other::zzz"
    assert route_model(other, Policy(), {TUNED: object()}, {}) is None
    assert route_model("alias", Policy(), {}, {"alias": other}) is None


def test_any_base_model_routes_when_the_policy_lists_none() -> None:
    assert route_model("some-new-model", Policy(), {}, {}) == "some-new-model"


# --- PII ---------------------------------------------------------------------------------------


def test_redaction_covers_strings_and_text_parts() -> None:
    parts = [
        {"type": "text", "text": "mail bob@example.com"},
        {"type": "image_url", "image_url": {}},
    ]
    prepared = run(chat("call 415-555-0123 please", parts), opaque_parts="allow")
    messages = prepared.body["messages"]
    assert messages[0]["content"] == "call [PHONE] please"
    assert messages[1]["content"][0]["text"] == "mail [EMAIL]"
    assert messages[1]["content"][1] == {"type": "image_url", "image_url": {}}
    assert prepared.pii_found == {"PHONE": 1, "EMAIL": 1}
    with pytest.raises(InvalidRequest) as refused:
        run(chat("call 415-555-0123 please", parts))
    assert refused.value.code == "opaque_content_refused"
    assert refused.value.param == "messages[1].content[1]"


def test_redaction_covers_legacy_prompts() -> None:
    body = {"model": "davinci-002", "prompt": ["ip 203.0.113.9", "plain", ["deep 203.0.113.9"]]}
    prepared = run(body, "completions", opaque_parts="allow")
    assert prepared.body["prompt"] == ["ip [IP_ADDRESS]", "plain", ["deep [IP_ADDRESS]"]]
    with pytest.raises(InvalidRequest, match="token ids"):
        run({"model": "davinci-002", "prompt": [[1, 2, 3]]}, "completions")
    single = run({"model": "davinci-002", "prompt": "x bob@example.com"}, "completions")
    assert single.body["prompt"] == "x [EMAIL]"


def test_redaction_keeps_entities_the_policy_does_not_list() -> None:
    prepared = run(chat("bob@example.com 415-555-0123"), pii_entities=["EMAIL"])
    assert prepared.body["messages"][0]["content"] == "[EMAIL] 415-555-0123"


def test_block_names_the_kinds_and_never_the_values() -> None:
    with pytest.raises(InvalidRequest) as caught:
        run(chat("bob@example.com", "card 4111 1111 1111 1111"), pii="block")
    error = caught.value
    assert error.code == "pii_blocked" and error.param == "messages[0].content"
    assert error.extra["envelope"]["pii_paths"] == ["messages[0].content", "messages[1].content"]
    assert "CREDIT_CARD" in error.message and "EMAIL" in error.message
    assert "bob@" not in error.message and "4111" not in error.message


def test_allow_leaves_text_alone() -> None:
    prepared = run(chat("bob@example.com"), pii="allow")
    assert prepared.body["messages"][0]["content"] == "bob@example.com"


# --- store, output caps, users, streams --------------------------------------------------------


def test_store_is_forced_false_for_chat() -> None:
    assert run(chat(store=True)).body["store"] is False
    assert run(chat(store=True), force_store_false=False).body["store"] is True
    assert "store" not in run(chat(), force_store_false=False).body
    legacy = run({"model": "davinci-002", "prompt": "x"}, "completions")
    assert "store" not in legacy.body


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, {"max_completion_tokens": 50}),
        ({"max_tokens": 500}, {"max_tokens": 50}),
        ({"max_tokens": 20}, {"max_tokens": 20}),
        (
            {"max_completion_tokens": 80, "max_tokens": 10},
            {"max_completion_tokens": 50, "max_tokens": 10},
        ),
    ],
)
def test_chat_output_is_capped(fields: dict[str, int], expected: dict[str, int]) -> None:
    prepared = run(chat(**fields), max_output_tokens=50)
    sent = {k: v for k, v in prepared.body.items() if k.startswith("max_")}
    assert sent == expected
    assert prepared.output_limit == min(expected.values())


def test_legacy_output_is_capped_in_max_tokens() -> None:
    prepared = run({"model": "davinci-002", "prompt": "x"}, "completions", max_output_tokens=9)
    assert prepared.body["max_tokens"] == 9
    uncapped = run({"model": "davinci-002", "prompt": "x"}, "completions")
    assert "max_tokens" not in uncapped.body and uncapped.output_limit == 16


def test_a_bad_output_limit_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        run(chat(max_tokens="many"), max_output_tokens=5)
    assert caught.value.param == "max_tokens"


def test_users_leave_only_as_keyed_hashes() -> None:
    prepared = run(chat(user="alice@example.com", safety_identifier="alice"))
    user = prepared.body["user"]
    assert user.startswith("tg-") and "alice" not in user
    assert user == hash_user("alice@example.com", "org_a", KEY)
    assert user != hash_user("alice@example.com", "org_b", KEY)
    assert user != hash_user("alice@example.com", "org_a", b"other")
    assert prepared.body["safety_identifier"] == hash_user("alice", "org_a", KEY)
    with pytest.raises(InvalidRequest):
        run(chat(user=42))


def test_streams_always_ask_for_usage_and_remember_who_asked() -> None:
    quiet = run(chat(stream=True))
    assert quiet.body["stream_options"] == {"include_usage": True}
    assert quiet.stream and not quiet.client_wants_usage
    asked = run(chat(stream=True, stream_options={"include_usage": True}))
    assert asked.client_wants_usage
    assert not run(chat()).stream


def test_choices_count_prompts_and_n() -> None:
    assert run(chat(n=3)).choices == 3
    legacy = run({"model": "davinci-002", "prompt": ["a", "b"], "n": 2}, "completions")
    assert legacy.choices == 4


def test_prompt_texts_lists_what_the_model_reads() -> None:
    body = chat("one", [{"type": "text", "text": "two"}])
    assert prompt_texts(body, "chat") == ["one", "two"]
