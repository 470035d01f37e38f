"""The completion proxy through the official SDK, against the sandbox upstream: routing and the
org's policy as the upstream received it."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from tests.api.proxy_helpers import BASE_MODEL, Proxy, eventually, proxy, tuned_model, upstream

__all__ = ["proxy", "tuned_model", "upstream"]

HELLO = [{"role": "user", "content": "hello there"}]


def test_chat_completion_through_the_sdk(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.sdk(key) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
        completion = raw.parse()
    assert raw.headers["x-request-id"]
    assert completion.choices[0].message.content == f"Echo from {BASE_MODEL}: hello there"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0


def test_legacy_completion_through_the_sdk(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.sdk(key) as sdk:
        completion = sdk.completions.create(
            model="davinci-002", prompt=["one", "two"], max_tokens=3
        )
    assert [choice.finish_reason for choice in completion.choices] == ["length", "length"]
    assert completion.usage is not None and completion.usage.completion_tokens == 6
    assert upstream.upstream_bodies("/v1/completions")[0]["prompt"] == ["one", "two"]


def test_the_clients_key_never_goes_upstream(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.sdk(key) as sdk:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        list(sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))
    entries = upstream.upstream_requests()
    assert len(entries) == 2 and all(entry["status"] == 200 for entry in entries)
    secret_part = key.rsplit("_", 1)[1]
    assert secret_part not in orjson.dumps(entries).decode()
    assert not any("tgk" in value for e in entries for value in e["headers"].values())


def test_aliases_route_to_the_orgs_tuned_model(upstream: Proxy, tuned_model: str) -> None:
    org_id, key = upstream.org()
    upstream.register(org_id, tuned_model)
    with upstream.http(key) as http:
        assert http.put("/v1/aliases/support", json={"model": tuned_model}).status_code == 200
    with upstream.sdk(key) as sdk:
        by_alias = sdk.chat.completions.create(model="support", messages=HELLO)
        by_id = sdk.chat.completions.create(model=tuned_model, messages=HELLO)
    assert by_alias.model == by_id.model == tuned_model
    assert [body["model"] for body in upstream.upstream_bodies()] == [tuned_model, tuned_model]


def test_another_orgs_tuned_model_is_not_found(upstream: Proxy, tuned_model: str) -> None:
    owner, _ = upstream.org()
    upstream.register(owner, tuned_model)
    _, key = upstream.org(name="other")
    unknown = tuned_model[:-4] + "zzzz"
    errors: list[dict[str, Any]] = []
    with upstream.sdk(key) as sdk:
        for model in (tuned_model, unknown):
            with pytest.raises(openai.NotFoundError) as caught:
                sdk.chat.completions.create(model=model, messages=HELLO)
            body = caught.value.body
            assert isinstance(body, dict)
            errors.append({**body, "message": body["message"].replace(model, "<model>")})
    assert errors[0] == errors[1]
    assert errors[0]["code"] == "model_not_found" and errors[0]["param"] == "model"
    assert upstream.upstream_requests() == []


def test_base_models_outside_the_allow_list_are_not_found(upstream: Proxy) -> None:
    _, key = upstream.org({"allowed_models": ["gpt-4o-mini"]})
    with upstream.sdk(key) as sdk:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model="gpt-4.1", messages=HELLO)


def test_redaction_is_what_the_upstream_receives(upstream: Proxy) -> None:
    _, key = upstream.org({"pii": "redact"})
    parts = [{"type": "text", "text": "my card is 4111 1111 1111 1111"}]
    messages: Any = [
        {"role": "system", "content": "Reply to bob@example.com"},
        {"role": "user", "content": parts},
    ]
    with upstream.sdk(key) as sdk:
        reply = sdk.chat.completions.create(model="gpt-4o-mini", messages=messages)
    sent = upstream.upstream_bodies()[0]["messages"]
    assert sent[0]["content"] == "Reply to [EMAIL]"
    assert sent[1]["content"][0]["text"] == "my card is [CREDIT_CARD]"
    assert reply.choices[0].message.content == f"Echo from {BASE_MODEL}: my card is [CREDIT_CARD]"


def test_block_refuses_naming_the_kinds(upstream: Proxy) -> None:
    _, key = upstream.org({"pii": "block", "pii_entities": ["EMAIL", "US_SSN"]})
    messages: Any = [{"role": "user", "content": "I am bob@example.com, SSN 123-45-6789"}]
    with upstream.sdk(key) as sdk, pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=messages)
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "pii_blocked"
    assert "EMAIL" in error["message"] and "US_SSN" in error["message"]
    assert "bob" not in error["message"] and "6789" not in error["message"]
    assert upstream.upstream_requests() == []


def test_store_is_sent_false_whatever_the_client_asked(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.sdk(key) as sdk:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, store=True)
    assert upstream.upstream_bodies()[0]["store"] is False


def test_output_tokens_are_capped(upstream: Proxy) -> None:
    _, key = upstream.org({"max_output_tokens": 3})
    with upstream.sdk(key) as sdk:
        capped = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=100)
        filled = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        legacy = sdk.completions.create(model="davinci-002", prompt="hi", max_tokens=50)
    chat_bodies = upstream.upstream_bodies()
    assert chat_bodies[0]["max_tokens"] == 3 and chat_bodies[1]["max_completion_tokens"] == 3
    assert upstream.upstream_bodies("/v1/completions")[0]["max_tokens"] == 3
    for reply in (capped, filled, legacy):
        assert reply.usage is not None and reply.usage.completion_tokens == 3
        assert reply.choices[0].finish_reason == "length"


def test_the_user_leaves_as_a_keyed_hash(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.sdk(key) as sdk:
        for _ in range(2):
            sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, user="alice@corp")
    users = [body["user"] for body in upstream.upstream_bodies()]
    assert users[0] == users[1] and users[0].startswith("tg-") and "alice" not in users[0]


@pytest.mark.parametrize(
    ("content", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "gpt-4o-mini"}', "messages"),
    ],
)
def test_malformed_bodies_are_refused_naming_the_parameter(
    upstream: Proxy, content: bytes, param: str | None
) -> None:
    _, key = upstream.org()
    with upstream.http(key) as http:
        response = http.post(
            "/v1/chat/completions", content=content, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_bad_and_revoked_keys_are_refused(upstream: Proxy) -> None:
    org_id, key = upstream.org()
    with upstream.sdk(key + "x") as sdk, pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    key_id, revoked = upstream.gateway.create_key(org_id, "inference")
    with upstream.sdk(revoked) as sdk:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        assert upstream.gateway.admin.delete(f"/admin/orgs/{org_id}/keys/{key_id}").is_success

        def refused() -> bool:
            try:
                sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
            except openai.AuthenticationError as error:
                return isinstance(error.body, dict) and error.body["code"] == "revoked_api_key"
            return False

        eventually(refused, timeout=2.0)
