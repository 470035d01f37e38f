"""An org's admins manage its keys at `/v1/keys`: other roles are refused, the secret is shown
once, another org's key is unknown, a revoked key is refused at once (the caller's own too), and
every create and revoke is audited with the key that did it."""

from __future__ import annotations

import json

from tests.api.conftest import Gateway


def assert_error(response: object, status: int, kind: str) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["type"] == kind and {"message", "param", "code"} <= set(error)


def test_only_admins_may_manage_keys(gateway: Gateway, org: str) -> None:
    member_id, _ = gateway.create_key(org, "member")
    for role in ("member", "inference"):
        _, key = gateway.create_key(org, role)
        with gateway.client(key) as client:
            assert_error(client.get("/v1/keys"), 403, "permission_error")
            created = client.post("/v1/keys", json={"name": "x", "role": "admin"})
            assert_error(created, 403, "permission_error")
            assert_error(client.delete(f"/v1/keys/{member_id}"), 403, "permission_error")
    listed = gateway.admin.get(f"/admin/orgs/{org}/keys").json()["data"]
    assert [k["name"] for k in listed] == ["test"] * 3  # nothing was created
    assert all(k["revoked_at"] is None for k in listed)
    with gateway.client() as anonymous:
        assert_error(anonymous.get("/v1/keys"), 401, "authentication_error")


def test_a_created_key_is_shown_once_and_works(gateway: Gateway, org: str) -> None:
    _, admin = gateway.create_key(org, "admin")
    with gateway.client(admin) as client:
        created = client.post("/v1/keys", json={"name": "ci", "role": "inference"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert set(body) == {"id", "key", "name", "role", "created_at"}
        assert (body["name"], body["role"]) == ("ci", "inference")
        assert body["key"].startswith(f"tgk_{body['id']}_")
        listed = client.get("/v1/keys")
        assert listed.status_code == 200
        assert body["key"] not in listed.text and body["key"].split("_")[2] not in listed.text
        mine = next(k for k in listed.json()["data"] if k["id"] == body["id"])
        assert "key" not in mine and mine["revoked_at"] is None
        operator_view = gateway.admin.get(f"/admin/orgs/{org}/keys").json()["data"]
        assert body["id"] in {k["id"] for k in operator_view}
    with gateway.client(body["key"]) as new:
        assert new.get("/v1/models").status_code == 200
        assert_error(new.get("/v1/files"), 403, "permission_error")  # it is an inference key


def test_bad_bodies_are_400(gateway: Gateway, org: str) -> None:
    _, admin = gateway.create_key(org, "admin")
    with gateway.client(admin) as client:
        for body in (
            {"name": "x", "role": "owner"},
            {"name": "", "role": "member"},
            {"name": "x", "role": "member", "secret": "mine"},
            {"role": "member"},
        ):
            assert_error(client.post("/v1/keys", json=body), 400, "invalid_request_error")


def test_keys_come_in_pages_newest_first(gateway: Gateway, org: str) -> None:
    first_id, admin = gateway.create_key(org, "admin", name="k0")
    with gateway.client(admin) as client:
        made = {
            client.post("/v1/keys", json={"name": f"k{n}", "role": "member"}).json()["id"]
            for n in (1, 2, 3)
        }
        page = client.get("/v1/keys", params={"limit": 3}).json()
        assert len(page["data"]) == 3 and page["has_more"]
        assert (page["first_id"], page["last_id"]) == (
            page["data"][0]["id"],
            page["data"][-1]["id"],
        )
        rest = client.get("/v1/keys", params={"limit": 3, "after": page["last_id"]}).json()
        assert len(rest["data"]) == 1 and not rest["has_more"]
        seen = page["data"] + rest["data"]
        assert [k["id"] for k in seen] == [k["id"] for k in client.get("/v1/keys").json()["data"]]
        assert {k["id"] for k in seen} == made | {first_id}
        stamps = [k["created_at"] for k in seen]
        assert stamps == sorted(stamps, reverse=True)
        assert_error(client.get("/v1/keys", params={"limit": 0}), 400, "invalid_request_error")


def test_another_orgs_key_is_404_and_lists_show_only_ones_own(gateway: Gateway) -> None:
    org_a, org_b = gateway.create_org("a"), gateway.create_org("b")
    a_member_id, a_member = gateway.create_key(org_a, "member")
    _, b_admin = gateway.create_key(org_b, "admin")
    with gateway.client(b_admin) as client:
        theirs = client.delete(f"/v1/keys/{a_member_id}")
        assert_error(theirs, 404, "invalid_request_error")
        nobody = client.delete("/v1/keys/0123456789abcdef")
        assert theirs.json()["error"]["code"] == nobody.json()["error"]["code"]
        assert_error(client.delete("/v1/keys/not-a-key"), 404, "invalid_request_error")
        assert a_member_id not in client.get("/v1/keys").text
    with gateway.client(a_member) as still:
        assert still.get("/v1/files").status_code == 200


def test_a_revoked_key_is_refused_at_once_even_the_callers_own(gateway: Gateway, org: str) -> None:
    admin_id, admin = gateway.create_key(org, "admin")
    member_id, member = gateway.create_key(org, "member")
    with gateway.client(admin) as client:
        revoked = client.delete(f"/v1/keys/{member_id}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["id"] == member_id and revoked.json()["revoked_at"] is not None
        again = client.delete(f"/v1/keys/{member_id}")  # already revoked: the same answer
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    with gateway.client(member) as gone:
        assert_error(gone.get("/v1/files"), 401, "authentication_error")
    with gateway.client(admin) as client:
        assert client.delete(f"/v1/keys/{admin_id}").status_code == 200
        assert_error(client.get("/v1/keys"), 401, "authentication_error")


def test_creates_and_revokes_are_audited_with_the_acting_key(gateway: Gateway, org: str) -> None:
    admin_id, admin = gateway.create_key(org, "admin")
    with gateway.client(admin) as client:
        created = client.post("/v1/keys", json={"name": "audited", "role": "member"}).json()
        assert client.delete(f"/v1/keys/{created['id']}").status_code == 200
        client.get("/v1/keys")  # a read that succeeds is not audited
        events = client.get("/v1/audit", params={"action": "keys.org"}).json()["data"]
    assert [e["action"] for e in events] == ["keys.org.revoke", "keys.org.create"]
    for event in events:
        assert (event["key_id"], event["role"], event["org_id"]) == (admin_id, "admin", org)
        assert event["resource_id"] == created["id"] and event["outcome"] == "success"
    assert events[1]["details"] == {"name": "audited", "role": "member"}
    assert created["key"] not in json.dumps(events)
