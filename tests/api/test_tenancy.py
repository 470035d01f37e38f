"""Operator API and org-key authentication, over real HTTP."""

from __future__ import annotations

import json

from tests.api.conftest import Gateway


def error_of(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_org_create_returns_contract_fields_and_default_policy(gateway: Gateway) -> None:
    response = gateway.admin.post("/admin/orgs", json={"name": "acme"})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "policy", "created_at"}
    assert body["policy"]["pii"] == "redact"
    assert body["policy"]["force_store_false"] is True
    listed = gateway.admin.get("/admin/orgs").json()["data"]
    assert body["id"] in {org["id"] for org in listed}
    assert gateway.admin.get(f"/admin/orgs/{body['id']}").json()["name"] == "acme"


def test_policy_rejects_unknown_field_naming_it(gateway: Gateway, org: str) -> None:
    response = gateway.admin.put(f"/admin/orgs/{org}/policy", json={"pii": "block", "pi": 1})
    assert response.status_code == 400
    assert error_of(response)["param"] == "pi"


def test_policy_rejects_bad_value_naming_it(gateway: Gateway, org: str) -> None:
    response = gateway.admin.put(f"/admin/orgs/{org}/policy", json={"log_content": "everything"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "log_content"


def test_policy_replace_is_whole(gateway: Gateway) -> None:
    org = gateway.create_org(policy={"pii": "block", "max_output_tokens": 50})
    response = gateway.admin.put(f"/admin/orgs/{org}/policy", json={"log_content": "full"})
    assert response.status_code == 200
    policy = response.json()["policy"]
    assert policy["pii"] == "redact"
    assert policy["max_output_tokens"] is None
    assert policy["log_content"] == "full"


def test_operator_routes_need_the_admin_token(gateway: Gateway, org: str) -> None:
    _, key = gateway.create_key(org, "admin")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {key}"}):
        with gateway.client() as client:
            response = client.get("/admin/orgs", headers=headers)
        assert response.status_code == 401
        assert error_of(response)["type"] == "authentication_error"


def test_key_is_shown_once_and_listed_without_secret(gateway: Gateway, org: str) -> None:
    key_id, key = gateway.create_key(org, "member", name="ci")
    listed = gateway.admin.get(f"/admin/orgs/{org}/keys").json()["data"]
    assert [item["id"] for item in listed] == [key_id]
    assert "key" not in listed[0]
    assert key not in gateway.admin.get(f"/admin/orgs/{org}/keys").text
    assert key.split("_", 2)[2] not in gateway.admin.get(f"/admin/orgs/{org}/keys").text


def test_missing_bad_and_revoked_keys_are_401(gateway: Gateway, org: str) -> None:
    key_id, key = gateway.create_key(org, "admin")
    with gateway.client() as client:
        assert client.get("/v1/audit").status_code == 401
        assert error_of(client.get("/v1/audit"))["code"] == "missing_api_key"
        bad = client.get("/v1/audit", headers={"Authorization": f"Bearer {key}x"})
        assert bad.status_code == 401
        garbage = client.get("/v1/audit", headers={"Authorization": "Bearer sk-not-ours"})
        assert garbage.status_code == 401
        ok = client.get("/v1/audit", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    revoked = gateway.admin.delete(f"/admin/orgs/{org}/keys/{key_id}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    with gateway.client(key) as client:
        response = client.get("/v1/audit")
    assert response.status_code == 401
    assert error_of(response)["code"] == "revoked_api_key"


def test_wrong_role_is_403(gateway: Gateway, org: str) -> None:
    for role in ("member", "inference"):
        _, key = gateway.create_key(org, role)
        with gateway.client(key) as client:
            response = client.get("/v1/audit")
        assert response.status_code == 403
        assert error_of(response)["type"] == "permission_error"


def test_another_orgs_objects_are_404(gateway: Gateway) -> None:
    mine, theirs = gateway.create_org("mine"), gateway.create_org("theirs")
    their_key_id, _ = gateway.create_key(theirs, "admin")
    response = gateway.admin.delete(f"/admin/orgs/{mine}/keys/{their_key_id}")
    assert response.status_code == 404
    assert gateway.admin.get(f"/admin/orgs/{theirs}/keys").json()["data"][0]["revoked_at"] is None
    assert gateway.admin.get("/admin/orgs/org_doesnotexist").status_code == 404


def test_key_for_unknown_org_is_404(gateway: Gateway) -> None:
    response = gateway.admin.post("/admin/orgs/org_nope/keys", json={"name": "k", "role": "admin"})
    assert response.status_code == 404


def test_key_role_must_be_known(gateway: Gateway, org: str) -> None:
    response = gateway.admin.post(f"/admin/orgs/{org}/keys", json={"name": "k", "role": "root"})
    assert response.status_code == 400
    assert error_of(response)["param"] == "role"


def test_policy_reads_back(gateway: Gateway) -> None:
    org = gateway.create_org(policy={"pii": "block", "rate_limits": {"requests_per_minute": 5}})
    response = gateway.admin.get(f"/admin/orgs/{org}/policy")
    assert response.status_code == 200
    assert response.json()["pii"] == "block"
    assert response.json()["rate_limits"] == {"requests_per_minute": 5, "tokens_per_minute": None}
    assert gateway.admin.get("/admin/orgs/org_doesnotexist/policy").status_code == 404


def test_policy_merge_patch_changes_only_what_it_names(gateway: Gateway) -> None:
    org = gateway.create_org(
        policy={"pii": "block", "max_output_tokens": 50, "rate_limits": {"requests_per_minute": 5}}
    )
    patch = {
        "log_content": "full",
        "max_output_tokens": None,
        "rate_limits": {"tokens_per_minute": 9},
    }
    response = gateway.admin.patch(
        f"/admin/orgs/{org}/policy",
        content=json.dumps(patch),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert response.status_code == 200, response.text
    policy = response.json()["policy"]
    assert policy["pii"] == "block"
    assert policy["log_content"] == "full"
    assert policy["max_output_tokens"] is None
    assert policy["rate_limits"] == {"requests_per_minute": 5, "tokens_per_minute": 9}
    assert gateway.admin.get(f"/admin/orgs/{org}/policy").json() == policy


def test_policy_merge_patch_null_resets_to_the_default(gateway: Gateway) -> None:
    org = gateway.create_org(policy={"pii": "block", "pii_entities": ["EMAIL"]})
    response = gateway.admin.patch(
        f"/admin/orgs/{org}/policy", json={"pii": None, "pii_entities": None}
    )
    assert response.status_code == 200, response.text
    assert response.json()["policy"]["pii"] == "redact"
    assert len(response.json()["policy"]["pii_entities"]) == 6


def test_policy_merge_patch_is_validated_whole(gateway: Gateway) -> None:
    org = gateway.create_org(policy={"pii": "block"})
    unknown = gateway.admin.patch(f"/admin/orgs/{org}/policy", json={"pi": "allow"})
    assert unknown.status_code == 400
    assert error_of(unknown)["param"] == "pi"
    nested = gateway.admin.patch(f"/admin/orgs/{org}/policy", json={"rate_limits": {"rpm": 1}})
    assert nested.status_code == 400
    assert error_of(nested)["param"] == "rate_limits.rpm"
    typo = gateway.admin.patch(f"/admin/orgs/{org}/policy", json={"allowed_models": ["gpt-4o-mni"]})
    assert typo.status_code == 400
    assert "gpt-4o-mni" in str(error_of(typo)["message"])
    not_object = gateway.admin.patch(f"/admin/orgs/{org}/policy", json=["pii"])
    assert not_object.status_code == 400
    text = gateway.admin.patch(
        f"/admin/orgs/{org}/policy",
        content='{"pii": "allow"}',
        headers={"Content-Type": "text/plain"},
    )
    assert text.status_code == 415
    assert error_of(text)["type"] == "invalid_request_error"
    assert gateway.admin.get(f"/admin/orgs/{org}/policy").json()["pii"] == "block"
    missing = gateway.admin.patch("/admin/orgs/org_doesnotexist/policy", json={"pii": "allow"})
    assert missing.status_code == 404


def test_policy_patch_is_audited_like_replace(gateway: Gateway) -> None:
    org = gateway.create_org()
    _, key = gateway.create_key(org, "admin")
    assert (
        gateway.admin.patch(f"/admin/orgs/{org}/policy", json={"pii": "allow"}).status_code == 200
    )
    with gateway.client(key) as client:
        records = client.get("/v1/audit", params={"action": "orgs.policy"}).json()["data"]
    assert [record["action"] for record in records] == ["orgs.policy.update"]
    assert records[0]["resource_id"] == org
    assert records[0]["details"]["patch"] == {"pii": "allow"}
    assert records[0]["details"]["policy"]["pii"] == "allow"
