"""Writes to a key, an org's policy or its models reach the completion proxy's cached views at
once in the process that made them (every other process drops them by a pub/sub notice: see
tests/integration/test_revocation.py)."""

from __future__ import annotations

import openai
import pytest

from tests.api.proxy_helpers import Proxy, proxy, upstream

__all__ = ["proxy", "upstream"]

HELLO = [{"role": "user", "content": "hello"}]


def test_a_revoked_key_is_refused_on_the_next_request(upstream: Proxy) -> None:
    org_id, key = upstream.org()
    key_id = key.split("_")[1]
    with upstream.sdk(key) as sdk:
        for _ in range(5):  # the caller's view is cached now
            sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        revoked = upstream.gateway.admin.delete(f"/admin/orgs/{org_id}/keys/{key_id}")
        assert revoked.status_code == 200, revoked.text
        with pytest.raises(openai.AuthenticationError):
            sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)


def test_a_new_policy_holds_from_the_next_request(upstream: Proxy) -> None:
    org_id, key = upstream.org()
    with upstream.sdk(key) as sdk:
        for _ in range(5):
            sdk.chat.completions.create(model="gpt-4.1", messages=HELLO)
        policy = {"allowed_models": ["gpt-4o-mini"]}
        replaced = upstream.gateway.admin.put(f"/admin/orgs/{org_id}/policy", json=policy)
        assert replaced.status_code == 200, replaced.text
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model="gpt-4.1", messages=HELLO)
