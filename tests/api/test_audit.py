"""The audit trail: every mutating and denied call, filters, cursor pages, JSONL export."""

from __future__ import annotations

import json
import time

from tests.api.conftest import Gateway


def audit(gateway: Gateway, key: str, **params: object) -> dict[str, object]:
    with gateway.client(key) as client:
        response = client.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_operator_actions_and_denials_are_recorded(gateway: Gateway) -> None:
    org = gateway.create_org("audited")
    _admin_id, admin_key = gateway.create_key(org, "admin")
    member_id, member_key = gateway.create_key(org, "member")
    with gateway.client(member_key) as client:
        assert client.get("/v1/audit", headers={"X-Request-ID": "denied-1"}).status_code == 403
    gateway.admin.delete(f"/admin/orgs/{org}/keys/{member_id}")
    with gateway.client(member_key) as client:
        assert client.get("/v1/audit").status_code == 401

    events = audit(gateway, admin_key)["data"]
    actions = [event["action"] for event in events]  # type: ignore[index]
    assert actions == [
        "audit.list",
        "keys.revoke",
        "audit.list",
        "keys.create",
        "keys.create",
        "orgs.create",
    ]
    by_action = {}
    for event in events:  # type: ignore[attr-defined]
        by_action.setdefault(event["action"], []).append(event)
    assert len(by_action["keys.create"]) == 2
    assert by_action["orgs.create"][0]["resource_id"] == org
    assert by_action["keys.revoke"][0]["resource_id"] == member_id
    denied = [e for e in events if e["outcome"] == "denied"]  # type: ignore[attr-defined]
    assert {e["status"] for e in denied} == {401, 403}
    forbidden = next(e for e in denied if e["status"] == 403)
    assert forbidden["key_id"] == member_id
    assert forbidden["role"] == "member"
    assert forbidden["request_id"] == "denied-1"
    assert forbidden["client"] == "127.0.0.1"
    revoked = next(e for e in denied if e["status"] == 401)
    assert revoked["org_id"] == org
    assert admin_key not in json.dumps(events)
    assert member_key not in json.dumps(events)


def test_reads_that_succeed_are_not_recorded(gateway: Gateway) -> None:
    org = gateway.create_org()
    _, key = gateway.create_key(org, "admin")
    gateway.admin.get(f"/admin/orgs/{org}")
    audit(gateway, key)
    actions = [event["action"] for event in audit(gateway, key)["data"]]  # type: ignore[index]
    assert actions == ["keys.create", "orgs.create"]


def test_filters_by_action_key_and_time(gateway: Gateway) -> None:
    org = gateway.create_org()
    _admin_id, admin_key = gateway.create_key(org, "admin")
    member_id, member_key = gateway.create_key(org, "member")
    time.sleep(0.01)  # audit times are whole milliseconds: keep `middle` apart from both sides
    middle = time.time()
    time.sleep(0.01)
    with gateway.client(member_key) as client:
        client.get("/v1/audit")
    by_key = audit(gateway, admin_key, key_id=member_id)["data"]
    assert [e["status"] for e in by_key] == [403]  # type: ignore[index]
    keys_only = audit(gateway, admin_key, action="keys")["data"]
    assert {e["action"] for e in keys_only} == {"keys.create"}  # type: ignore[index]
    recent = audit(gateway, admin_key, since=middle)["data"]
    assert [e["key_id"] for e in recent] == [member_id]  # type: ignore[index]
    old = audit(gateway, admin_key, until=middle)["data"]
    assert {e["action"] for e in old} == {"keys.create", "orgs.create"}  # type: ignore[index]


def test_cursor_pagination_walks_everything_once(gateway: Gateway) -> None:
    org = gateway.create_org()
    _, key = gateway.create_key(org, "admin")
    for index in range(7):
        gateway.create_key(org, "inference", name=f"k{index}")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = audit(gateway, key, **params)
        seen += [e["id"] for e in page["data"]]  # type: ignore[attr-defined]
        pages += 1
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert len(seen) == len(set(seen)) == 9
    assert pages == 3 or pages == 4
    assert seen == sorted(seen, key=lambda i: tuple(map(int, i.split("-"))), reverse=True)


def test_bad_cursor_is_400(gateway: Gateway) -> None:
    org = gateway.create_org()
    _, key = gateway.create_key(org, "admin")
    with gateway.client(key) as client:
        response = client.get("/v1/audit", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "cursor"


def test_export_streams_jsonl_oldest_first(gateway: Gateway) -> None:
    org = gateway.create_org()
    _, key = gateway.create_key(org, "admin")
    gateway.create_key(org, "member")
    with gateway.client(key) as client:
        response = client.get("/v1/audit/export")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["action"] for line in lines] == ["orgs.create", "keys.create", "keys.create"]


def test_audit_is_per_org(gateway: Gateway) -> None:
    mine, theirs = gateway.create_org("a"), gateway.create_org("b")
    _, my_key = gateway.create_key(mine, "admin")
    gateway.create_key(theirs, "admin")
    events = audit(gateway, my_key)["data"]
    assert {e["org_id"] for e in events} == {mine}  # type: ignore[index]
