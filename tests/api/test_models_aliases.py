"""`/v1/aliases/{name}`: stable names of the org that route to its tuned models."""

from __future__ import annotations

from tests.api.proxy_helpers import Proxy, proxy, tuned_model, upstream

__all__ = ["proxy", "tuned_model", "upstream"]


def test_alias_lifecycle(upstream: Proxy, tuned_model: str) -> None:
    org_id, key = upstream.org(role="admin")
    upstream.register(org_id, tuned_model)
    with upstream.http(key) as http:
        put = http.put("/v1/aliases/support-bot", json={"model": tuned_model})
        assert put.json() == {"object": "alias", "name": "support-bot", "model": tuned_model}
        http.put("/v1/aliases/cheap", json={"model": "gpt-4o-mini"})
        assert http.get("/v1/aliases/support-bot").json()["model"] == tuned_model
        listed = http.get("/v1/aliases").json()["data"]
        assert [alias["name"] for alias in listed] == ["cheap", "support-bot"]
        http.put("/v1/aliases/cheap", json={"model": "gpt-4.1-mini"})
        assert http.get("/v1/aliases/cheap").json()["model"] == "gpt-4.1-mini"
        deleted = http.delete("/v1/aliases/cheap")
        assert deleted.json() == {"name": "cheap", "object": "alias", "deleted": True}
        assert http.get("/v1/aliases/cheap").status_code == 404
        actions = http.get("/v1/audit", params={"action": "aliases"}).json()["data"]
    assert [a["action"] for a in actions] == ["aliases.delete"] + ["aliases.put"] * 3


def test_an_alias_cannot_point_at_another_orgs_model(upstream: Proxy, tuned_model: str) -> None:
    owner, _ = upstream.org()
    upstream.register(owner, tuned_model)
    _, key = upstream.org({"allowed_models": ["gpt-4o-mini"]}, name="other")
    with upstream.http(key) as http:
        for target in (tuned_model, "gpt-4.1"):
            response = http.put("/v1/aliases/stolen", json={"model": target})
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "model_not_found"


def test_alias_names_and_bodies_are_checked(upstream: Proxy) -> None:
    _, key = upstream.org()
    with upstream.http(key) as http:
        assert http.put("/v1/aliases/ok", json={"model": "gpt-4o-mini"}).status_code == 200
        assert http.put("/v1/aliases/ok2", json={"model": "ok"}).status_code == 400
        assert http.put("/v1/aliases/bad:name", json={"model": "gpt-4o-mini"}).status_code == 400
        assert http.put("/v1/aliases/x", json={"model": "m", "extra": 1}).status_code == 400


def test_inference_keys_may_not_manage_aliases(upstream: Proxy) -> None:
    _, key = upstream.org(role="inference")
    with upstream.http(key) as http:
        assert http.get("/v1/aliases").status_code == 403
