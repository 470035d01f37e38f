"""`/v1/models`: the org's tuned models and the base models its policy allows; deleting a tuned
model deletes it upstream and stops routing to it. Another org's model is simply not there."""

from __future__ import annotations

import openai
import pytest

from tests.api.proxy_helpers import Proxy, proxy, tuned_model, upstream

__all__ = ["proxy", "tuned_model", "upstream"]

HELLO = [{"role": "user", "content": "hello"}]


def test_the_list_holds_the_orgs_tuned_models_and_allowed_bases(
    upstream: Proxy, tuned_model: str
) -> None:
    org_id, key = upstream.org({"allowed_models": ["gpt-4o-mini", "gpt-4.1"]}, role="inference")
    upstream.register(org_id, tuned_model)
    _, other_key = upstream.org(name="other")
    with upstream.sdk(key) as sdk, upstream.sdk(other_key) as other:
        listed = sdk.models.list()
        unrestricted = [model.id for model in other.models.list()]
    assert [(m.id, m.owned_by) for m in listed.data] == [
        (tuned_model, org_id),
        ("gpt-4o-mini", "system"),
        ("gpt-4.1", "system"),
    ]
    assert tuned_model not in unrestricted and "gpt-4o-mini-2024-07-18" in unrestricted


def test_retrieving_a_model_by_an_id_with_colons(upstream: Proxy, tuned_model: str) -> None:
    org_id, key = upstream.org({"allowed_models": ["gpt-4o-mini"]})
    upstream.register(org_id, tuned_model)
    _, other_key = upstream.org(name="other")
    with upstream.sdk(key) as sdk, upstream.sdk(other_key) as other:
        assert sdk.models.retrieve(tuned_model).id == tuned_model
        assert sdk.models.retrieve("gpt-4o-mini").owned_by == "system"
        for client, model in ((sdk, "gpt-4.1"), (other, tuned_model)):
            with pytest.raises(openai.NotFoundError) as caught:
                client.models.retrieve(model)
            assert isinstance(caught.value.body, dict)
            assert caught.value.body["code"] == "model_not_found"


def test_deleting_a_tuned_model_deletes_it_upstream_and_from_routing(upstream: Proxy) -> None:
    model = upstream.tune()
    org_id, key = upstream.org()
    upstream.register(org_id, model)
    _, other_key = upstream.org(name="other")
    with upstream.sdk(other_key) as other, pytest.raises(openai.NotFoundError):
        other.models.delete(model)
    upstream.reset_upstream()
    with upstream.sdk(key) as sdk:
        assert sdk.models.delete(model).deleted is True
        assert model not in [m.id for m in sdk.models.list()]
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model=model, messages=HELLO)
    deletes = [e for e in upstream.upstream_requests("/v1/models") if e["method"] == "DELETE"]
    assert [e["path"] for e in deletes] == [f"/v1/models/{model}"]


def test_only_keys_that_may_write_models_delete_them(upstream: Proxy, tuned_model: str) -> None:
    org_id, key = upstream.org(role="inference")
    upstream.register(org_id, tuned_model)
    with upstream.sdk(key) as sdk, pytest.raises(openai.PermissionDeniedError):
        sdk.models.delete(tuned_model)
