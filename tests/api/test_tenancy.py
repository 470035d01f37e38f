"""Operator API and org-key authentication, over real HTTP."""

from __future__ import annotations

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
