"""Framework-level failures leave in OpenAI's envelope with the right status."""

from __future__ import annotations

import pytest

from tests.api.conftest import Gateway
from tests.api.test_tenancy import error_of


def test_unknown_route_is_404_envelope(gateway: Gateway) -> None:
    with gateway.client() as client:
        response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["code"] == "unknown_url"


def test_wrong_method_is_405_envelope(gateway: Gateway) -> None:
    response = gateway.admin.patch("/admin/orgs")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_malformed_json_is_400_envelope(gateway: Gateway) -> None:
    response = gateway.admin.post(
        "/admin/orgs", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["type"] == "invalid_request_error"


@pytest.mark.parametrize("body", [b"[]", b"null", b'{"name": 5}', b'{"name": ""}', b"{}"])
def test_wrong_shapes_are_400_not_500(gateway: Gateway, body: bytes) -> None:
    response = gateway.admin.post(
        "/admin/orgs", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    error_of(response)


def test_body_too_large_is_413_envelope(gateway: Gateway) -> None:
    big = b'{"name": "' + b"a" * (gateway.settings.max_json_body_bytes + 10) + b'"}'
    response = gateway.admin.post(
        "/admin/orgs", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_request_id_is_echoed_or_generated(gateway: Gateway) -> None:
    with gateway.client() as client:
        echoed = client.get("/health", headers={"X-Request-ID": "trace-42"})
        generated = client.get("/health")
        hostile = client.get("/health", headers={"X-Request-ID": "x" * 500})
    assert echoed.headers["x-request-id"] == "trace-42"
    assert generated.headers["x-request-id"].startswith("req_")
    assert hostile.headers["x-request-id"].startswith("req_")


def test_health_ready_and_metrics(gateway: Gateway) -> None:
    with gateway.client() as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        metrics = client.get("/metrics")
    assert ready.status_code == 200
    assert ready.json()["redis"] is True
    assert ready.json()["workers"] >= 1
    assert metrics.status_code == 200
    assert 'tunegate_http_requests_total{method="GET",route="/health",status="200"}' in metrics.text
    assert "tunegate_http_request_duration_seconds_bucket" in metrics.text
    assert 'tunegate_queue_depth{queue="tunegate"}' in metrics.text
