"""A JSON body nested deeper than the gateway takes is a 400 on every route that reads one,
never a 500 (a decoder's `RecursionError`, or the upstream encoder giving up)."""

from __future__ import annotations

import functools

import orjson
import pytest

from service.config import Settings
from service.http.app import create_app
from service.http.bodies import MAX_JSON_DEPTH, exceeds_depth
from service.operations.context import Context
from service.store import Store
from tests.api.conftest import ADMIN_TOKEN, Gateway
from tests.api.jobs_helpers import tenant
from tests.api.test_tenancy import error_of

PROXY = [("POST", "/v1/chat/completions"), ("POST", "/v1/completions")]
# Where the deep value goes in each body: inside a field the route reads.
TEMPLATES = {
    "/admin/orgs": b'{"name": "deep", "policy": %s}',
    "/admin/orgs/{org_id}/keys": b'{"name": %s, "role": "member"}',
    "/admin/orgs/{org_id}/policy": b'{"budgets": %s}',
    "/v1/aliases/{name}": b'{"model": %s}',
    "/v1/keys": b'{"name": %s, "role": "member"}',
    "/v1/fine_tuning/jobs": b'{"model": "gpt-4o-mini", "training_file": "f", "metadata": %s}',
    "/v1/sweeps": b'{"model": "gpt-4o-mini", "space": %s}',
    "/v1/sweeps/{sweep_id}/promote": b'{"alias": %s}',
    "/v1/chat/completions": b'{"model": "gpt-4o-mini", "messages": [{"role": "user", '
    b'"content": "hi"}], "tools": %s}',
    "/v1/completions": b'{"model": "gpt-4o-mini", "prompt": %s}',
}


@functools.cache
def json_body_routes() -> list[tuple[str, str]]:
    """Every route that decodes a JSON body (a `data` parameter), and the completion proxy."""
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    app = create_app(Context(settings=settings, store=Store(settings.redis_url or "")))
    found = [
        (method, route.path_format)
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if "data" in handler.parsed_fn_signature.parameters
        for method in handler.http_methods
    ]
    return sorted(found + PROXY)


def nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def test_every_json_route_has_a_deep_body_to_send() -> None:
    assert {path for _, path in json_body_routes()} <= set(TEMPLATES)
    assert len(json_body_routes()) >= 10


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 300, 1_000, 1_100, 100_000])
def test_too_deep_is_400_everywhere(gateway: Gateway, depth: int, kind: str) -> None:
    org = gateway.create_org()
    with tenant(gateway, role="admin") as a, gateway.client() as client:
        ids = {"{org_id}": org, "{name}": "deep", "{sweep_id}": "sweep-" + "a" * 24}
        for method, template in json_body_routes():
            path = functools.reduce(lambda p, kv: p.replace(*kv), ids.items(), template)
            token = ADMIN_TOKEN if path.startswith("/admin") else a.key
            body = TEMPLATES[template] % nested(depth, kind)
            response = client.request(
                method,
                path,
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert response.status_code == 400, f"{method} {template}: {response.text}"
            assert error_of(response)["code"] == "invalid_json", f"{method} {template}"


def test_a_body_just_deep_enough_is_read() -> None:
    assert not exceeds_depth(orjson.loads(nested(MAX_JSON_DEPTH, "array")))
    assert exceeds_depth(orjson.loads(nested(MAX_JSON_DEPTH + 1, "object")))
