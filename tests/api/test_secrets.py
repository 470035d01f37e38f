"""No secret (upstream key, org key, admin token) in any log line or response."""

from __future__ import annotations

import pytest

from service.logging import configure_logging
from tests.api.conftest import ADMIN_TOKEN, UPSTREAM_KEY, Gateway


def test_no_secret_in_logs_or_responses(
    gateway: Gateway, capfd: pytest.CaptureFixture[str]
) -> None:
    # Another module in this process may have left logging at another level or stream.
    configure_logging("json", "info")
    org = gateway.create_org("secretive")
    key_id, key = gateway.create_key(org, "admin")
    bodies: list[str] = []
    with gateway.client(key) as client:
        bodies.append(client.get("/v1/audit").text)
        bodies.append(client.get("/v1/audit/export").text)
        bodies.append(client.get(f"/v1/audit?key_id={key}").text)
        bad = client.get("/v1/audit", headers={"Authorization": f"Bearer {key}tampered"})
        bodies.append(bad.text + str(bad.headers))
    bodies.append(gateway.admin.get(f"/admin/orgs/{org}/keys").text)
    bodies.append(gateway.admin.get("/admin/orgs").text)
    with gateway.client() as client:
        bodies.append(client.get("/metrics").text)
        wrong = client.get("/admin/orgs", headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"})
        bodies.append(wrong.text + str(wrong.headers))
    gateway.admin.delete(f"/admin/orgs/{org}/keys/{key_id}")
    logs = capfd.readouterr()
    secret_part = key.split("_", 2)[2]
    for secret in (key, secret_part, ADMIN_TOKEN, UPSTREAM_KEY):
        assert secret not in logs.out + logs.err
        for body in bodies:
            assert secret not in body
    assert '"request"' in logs.err or "request" in logs.err
