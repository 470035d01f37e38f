"""Who may call what, for every route of the app, generated from its route table.

`MATRIX` says, for each route, who DESIGN.md lets call it (public, the operator, OpenAI's
signature, or org keys of some roles) and how to call it. A route of the app that the matrix
does not know fails `test_every_route_is_in_the_matrix`, so a new route cannot go unchecked.
Against real objects of every kind in org A (a file, a finished job, its model, an alias, a
callback delivery): org B's key gets 404 in OpenAI's envelope, exactly as for an id that never
existed; B's lists show nothing of A; each role gets exactly its access (allowed: not 401/403;
denied: 403); no key is 401; the operator routes take only the admin token.
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from service.config import Settings
from service.domain.tenancy.access import ROLES
from service.http.app import create_app
from service.ids import is_valid
from service.logging import configure_logging
from service.operations.context import Context
from service.store import Store
from tests.api.conftest import ADMIN_TOKEN
from tests.api.datasets import chat_jsonl
from tests.reliability.proof_gateway import (
    BASE_MODEL,
    World,
    build_world,
    create_response,
    eval_body,
    hook_receiver,
    make_tenant,
    proof_gateway,
    run_body,
    sweep_body,
)

Request = Callable[[World], dict[str, Any]]
ALL = frozenset(ROLES)
MEMBERS = frozenset({"admin", "member"})
ADMINS = frozenset({"admin"})
DOCS = re.compile(r"^/(openapi|docs)(/|$)")
OPENAI_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"matrix-openai-webhook-secret").decode()


def no_body(_world: World) -> dict[str, Any]:
    return {}


def json_body(body: dict[str, Any]) -> Request:
    return lambda _world: {"json": body}


def upload(_world: World) -> dict[str, Any]:
    data = chat_jsonl(12, salt=secrets.token_hex(4))
    return {"files": {"file": ("m.jsonl", data)}, "data": {"purpose": "fine-tune"}}


def new_job(world: World) -> dict[str, Any]:
    return {"json": {"model": BASE_MODEL, "training_file": world.file_id}}


def chat(world: World) -> dict[str, Any]:
    messages = [{"role": "user", "content": "Say hi."}]
    return {"json": {"model": world.model_id, "messages": messages, "max_tokens": 5}}


def legacy(world: World) -> dict[str, Any]:
    return {"json": {"model": world.model_id, "prompt": "Say hi.", "max_tokens": 5}}


def responses_body(world: World) -> dict[str, Any]:
    return {"json": {"model": world.model_id, "input": "Say hi.", "max_output_tokens": 16}}


def alias_body(world: World) -> dict[str, Any]:
    return {"json": {"model": world.model_id}}


@dataclass(frozen=True)
class Route:
    """`access`: public | operator | signed | org; `roles`: the org roles that may call it;
    `disposable`: the path ids (of org A) to act on when the call would destroy a world object."""

    access: str
    roles: frozenset[str] = frozenset()
    request: Request = no_body
    disposable: Callable[[World, httpx.Client], dict[str, str]] | None = None


def fresh_file(_world: World, client: httpx.Client) -> dict[str, str]:
    response = client.post("/v1/files", **upload(_world))
    assert response.status_code == 200, response.text
    return {"file_id": response.json()["id"]}


def fresh_alias(world: World, client: httpx.Client) -> dict[str, str]:
    name = f"gone-{secrets.token_hex(3)}"
    assert client.put(f"/v1/aliases/{name}", **alias_body(world)).status_code == 200
    return {"name": name}


def fresh_response(world: World, client: httpx.Client) -> dict[str, str]:
    return {"response_id": create_response(client, world.model_id)}


def fresh_eval(_world: World, client: httpx.Client) -> dict[str, str]:
    response = client.post("/v1/evals", json=eval_body())
    assert response.status_code == 200, response.text
    return {"eval_id": response.json()["id"]}


def fresh_run(world: World, client: httpx.Client) -> dict[str, str]:
    response = client.post(f"/v1/evals/{world.eval_id}/runs", json=run_body())
    assert response.status_code == 200, response.text
    return {"run_id": response.json()["id"]}


def fresh_key(_world: World, client: httpx.Client) -> dict[str, str]:
    response = client.post("/v1/keys", json={"name": "gone", "role": "inference"})
    assert response.status_code == 201, response.text
    return {"key_id": response.json()["id"]}


def unknown_model(_world: World, _client: httpx.Client) -> dict[str, str]:
    return {"model_id": "ft:gpt-4o-mini-2024-07-18:nobody::nothing"}


def operator_target(world: World, _client: httpx.Client) -> dict[str, str]:
    """Operator calls that change an org act on a scratch org, never on A or B."""
    tenant = make_tenant(world.gateway, "scratch")
    return {"org_id": tenant.org_id, "key_id": tenant.key_ids["member"]}


MATRIX: dict[tuple[str, str], Route] = {
    ("GET", "/"): Route("public"),
    ("GET", "/health"): Route("public"),
    ("GET", "/ready"): Route("public"),
    ("GET", "/metrics"): Route("public"),
    ("POST", "/admin/orgs"): Route("operator", request=json_body({"name": "matrix"})),
    ("GET", "/admin/orgs"): Route("operator"),
    ("GET", "/admin/orgs/{org_id}"): Route("operator"),
    ("PUT", "/admin/orgs/{org_id}/policy"): Route(
        "operator", request=json_body({"pii": "allow"}), disposable=operator_target
    ),
    ("GET", "/admin/orgs/{org_id}/policy"): Route("operator"),
    ("PATCH", "/admin/orgs/{org_id}/policy"): Route(
        "operator", request=json_body({"pii": "allow"}), disposable=operator_target
    ),
    ("POST", "/admin/orgs/{org_id}/keys"): Route(
        "operator", request=json_body({"name": "m", "role": "member"}), disposable=operator_target
    ),
    ("GET", "/admin/orgs/{org_id}/keys"): Route("operator"),
    ("DELETE", "/admin/orgs/{org_id}/keys/{key_id}"): Route("operator", disposable=operator_target),
    ("POST", "/admin/orgs/{org_id}/webhook-secret"): Route("operator", disposable=operator_target),
    ("GET", "/v1/audit"): Route("org", ADMINS),
    ("GET", "/v1/keys"): Route("org", ADMINS),
    ("POST", "/v1/keys"): Route("org", ADMINS, json_body({"name": "m", "role": "member"})),
    ("DELETE", "/v1/keys/{key_id}"): Route("org", ADMINS, disposable=fresh_key),
    ("GET", "/v1/audit/export"): Route("org", ADMINS),
    ("POST", "/v1/files"): Route("org", MEMBERS, upload),
    ("GET", "/v1/files"): Route("org", MEMBERS),
    ("GET", "/v1/files/{file_id}"): Route("org", MEMBERS),
    ("DELETE", "/v1/files/{file_id}"): Route("org", MEMBERS, disposable=fresh_file),
    ("GET", "/v1/files/{file_id}/content"): Route("org", MEMBERS),
    ("GET", "/v1/files/{file_id}/report"): Route("org", MEMBERS),
    ("POST", "/v1/fine_tuning/jobs"): Route("org", MEMBERS, new_job),
    ("GET", "/v1/fine_tuning/jobs"): Route("org", MEMBERS),
    ("GET", "/v1/fine_tuning/jobs/{job_id}"): Route("org", MEMBERS),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel"): Route("org", MEMBERS),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/pause"): Route("org", MEMBERS),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/resume"): Route("org", MEMBERS),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/events"): Route("org", MEMBERS),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/checkpoints"): Route("org", MEMBERS),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/metrics"): Route("org", MEMBERS),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/metrics.svg"): Route("org", MEMBERS),
    ("GET", "/v1/webhooks/deliveries"): Route("org", MEMBERS),
    ("POST", "/v1/webhooks/openai"): Route("signed", request=json_body({"type": "x"})),
    ("GET", "/v1/models"): Route("org", ALL),
    ("GET", "/v1/models/{model_id}"): Route("org", ALL),
    ("DELETE", "/v1/models/{model_id}"): Route("org", MEMBERS, disposable=unknown_model),
    ("GET", "/v1/aliases"): Route("org", MEMBERS),
    ("GET", "/v1/aliases/{name}"): Route("org", MEMBERS),
    ("PUT", "/v1/aliases/{name}"): Route("org", MEMBERS, alias_body),
    ("DELETE", "/v1/aliases/{name}"): Route("org", MEMBERS, disposable=fresh_alias),
    ("GET", "/v1/usage"): Route("org", MEMBERS),
    ("GET", "/v1/budget"): Route("org", MEMBERS),
    ("GET", "/admin/budgets"): Route("operator"),
    ("GET", "/admin/orgs/{org_id}/budget"): Route("operator"),
    ("POST", "/v1/sweeps"): Route(
        "org", MEMBERS, lambda world: {"json": sweep_body(world.file_id)}
    ),
    ("GET", "/v1/sweeps"): Route("org", MEMBERS),
    ("GET", "/v1/sweeps/{sweep_id}"): Route("org", MEMBERS),
    ("GET", "/v1/sweeps/{sweep_id}/chart.svg"): Route("org", MEMBERS),
    ("POST", "/v1/sweeps/{sweep_id}/cancel"): Route("org", MEMBERS),
    ("POST", "/v1/sweeps/{sweep_id}/promote"): Route(
        "org", MEMBERS, json_body({"alias": "promoted"})
    ),
    ("POST", "/v1/evals"): Route("org", MEMBERS, lambda _world: {"json": eval_body()}),
    ("GET", "/v1/evals"): Route("org", MEMBERS),
    ("GET", "/v1/evals/{eval_id}"): Route("org", MEMBERS),
    ("POST", "/v1/evals/{eval_id}"): Route("org", MEMBERS, json_body({"name": "renamed"})),
    ("DELETE", "/v1/evals/{eval_id}"): Route("org", MEMBERS, disposable=fresh_eval),
    ("POST", "/v1/evals/{eval_id}/runs"): Route("org", MEMBERS, lambda _w: {"json": run_body()}),
    ("GET", "/v1/evals/{eval_id}/runs"): Route("org", MEMBERS),
    ("GET", "/v1/evals/{eval_id}/compare"): Route("org", MEMBERS),
    ("GET", "/v1/evals/{eval_id}/runs/{run_id}"): Route("org", MEMBERS),
    ("POST", "/v1/evals/{eval_id}/runs/{run_id}/cancel"): Route("org", MEMBERS),
    ("DELETE", "/v1/evals/{eval_id}/runs/{run_id}"): Route("org", MEMBERS, disposable=fresh_run),
    ("GET", "/v1/evals/{eval_id}/runs/{run_id}/output_items"): Route("org", MEMBERS),
    ("GET", "/v1/evals/{eval_id}/runs/{run_id}/output_items/{output_item_id}"): Route(
        "org", MEMBERS
    ),
    ("POST", "/v1/chat/completions"): Route("org", ALL, chat),
    ("POST", "/v1/completions"): Route("org", ALL, legacy),
    ("POST", "/v1/responses"): Route("org", ALL, responses_body),
    ("GET", "/v1/responses/{response_id}"): Route("org", ALL),
    ("DELETE", "/v1/responses/{response_id}"): Route("org", ALL, disposable=fresh_response),
    ("POST", "/v1/responses/{response_id}/cancel"): Route("org", ALL),
    ("GET", "/v1/responses/{response_id}/input_items"): Route("org", ALL),
    ("POST", "/v1/embeddings"): Route(
        "org", ALL, json_body({"model": "text-embedding-3-small", "input": "Say hi."})
    ),
    ("POST", "/v1/moderations"): Route("org", ALL, json_body({"input": "Say hi."})),
}


@functools.cache
def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route handler of the app, bar Litestar's own OPTIONS answers and
    the console's HTML pages (a session, not a key: tests/api/test_console.py and the browser
    tests hold their access)."""
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    app = create_app(Context(settings=settings, store=Store(settings.redis_url or "")))
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in getattr(handler, "http_methods", ()):
                if method != "OPTIONS" and not route.path_format.startswith("/console"):
                    found.append((method, route.path_format))
    return sorted(found)


def route_of(method: str, path: str) -> Route | None:
    if DOCS.match(path) and method == "GET":
        return Route("public")
    return MATRIX.get((method, path))


def routes_with(*access: str) -> list[tuple[str, str]]:
    return [key for key in app_routes() if (r := route_of(*key)) and r.access in access]


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    where = f"{response.request.method} {response.request.url.path}"
    assert response.status_code == status, f"{where}: {response.status_code} {response.text}"
    body = response.json()
    assert set(body) == {"error"}, f"{where}: {body}"
    assert {"message", "type", "param", "code"} <= set(body["error"]), f"{where}: {body}"
    return dict(body["error"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    configure_logging("json", "info")
    data_dir = tmp_path_factory.mktemp("matrix")
    signed = SecretStr(OPENAI_WEBHOOK_SECRET)
    with (
        hook_receiver() as receiver,
        proof_gateway(data_dir, openai_webhook_secret=signed) as gw,
        httpx.Client(base_url=gw.url, timeout=30, verify=False) as client,
    ):
        HTTP[gw.url] = client
        world = build_world(gw, receiver)
        yield world
        settle(world)
        del HTTP[gw.url]


def settle(world: World) -> None:
    """Cancel what the calls started (sweeps and jobs), so the gateway stops quietly."""
    with world.gateway.client(world.a.admin) as client:
        for sweep in client.get("/v1/sweeps", params={"limit": 100}).json()["data"]:
            client.post(f"/v1/sweeps/{sweep['id']}/cancel")
        for job in client.get("/v1/fine_tuning/jobs", params={"limit": 100}).json()["data"]:
            if job["status"] not in ("succeeded", "failed", "cancelled"):
                client.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")


def a_ids(world: World) -> dict[str, str]:
    return {
        "file_id": world.file_id,
        "job_id": world.job_id,
        "model_id": world.model_id,
        "name": world.alias,
        "org_id": world.a.org_id,
        "key_id": world.a.key_ids["member"],
        "sweep_id": world.sweep_id,
        "response_id": world.response_id,
        "eval_id": world.eval_id,
        "run_id": world.run_id,
        "output_item_id": world.output_item_id,
        "path": "openapi.json",
    }


def never_existed() -> dict[str, str]:
    return {
        "file_id": "file-" + secrets.token_hex(12),
        "job_id": "ftjob-" + secrets.token_hex(12),
        "model_id": f"ft:{BASE_MODEL}:nobody::{secrets.token_hex(4)}",
        "name": "never-" + secrets.token_hex(4),
        "org_id": "org_" + secrets.token_hex(8),
        "key_id": secrets.token_hex(8),
        "sweep_id": "sweep-" + secrets.token_hex(12),
        "response_id": "resp_" + secrets.token_hex(24),
        "eval_id": "eval_" + secrets.token_hex(12),
        "run_id": "evalrun_" + secrets.token_hex(12),
        "output_item_id": "outputitem_" + secrets.token_hex(12),
    }


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda match: ids[match.group(1)], path)


HTTP: dict[str, httpx.Client] = {}


def call(
    world: World, method: str, path: str, token: str | None, ids: dict[str, str]
) -> httpx.Response:
    route = route_of(method, path)
    assert route is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = HTTP[world.gateway.url]
    return client.request(method, fill(path, ids), headers=headers, **route.request(world))


def test_every_route_is_in_the_matrix() -> None:
    routes = app_routes()
    unknown = [f"{method} {path}" for method, path in routes if route_of(method, path) is None]
    assert not unknown, f"routes the tenancy matrix does not know how to exercise: {unknown}"
    stale = sorted(set(MATRIX) - set(routes))
    assert not stale, f"matrix entries for routes the app no longer has: {stale}"


def test_no_key_is_401_except_on_public_routes(world: World) -> None:
    for method, path in app_routes():
        route = route_of(method, path)
        assert route is not None
        response = call(world, method, path, None, a_ids(world))
        if route.access == "public":
            assert response.status_code not in (401, 403), f"{method} {path}: {response.text}"
        elif route.access == "signed":
            assert_refused_unsigned(response)
        else:
            assert_envelope(response, 401)
        if route.access == "org":
            malformed = call(world, method, path, "tgk_nope_" + "x" * 40, a_ids(world))
            assert_envelope(malformed, 401)


def test_operator_routes_take_only_the_admin_token(world: World) -> None:
    routes = routes_with("operator")
    assert routes
    for method, path in routes:
        for role in ROLES:
            assert_envelope(call(world, method, path, world.a.keys[role], a_ids(world)), 401)
        ids = a_ids(world)
        if (disposable := MATRIX[(method, path)].disposable) is not None:
            ids |= disposable(world, world.gateway.admin)
        response = call(world, method, path, ADMIN_TOKEN, ids)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
    for method, path in routes_with("org"):
        assert_envelope(call(world, method, path, ADMIN_TOKEN, a_ids(world)), 401)


def assert_refused_unsigned(response: httpx.Response) -> None:
    """OpenAI's webhook takes no key: without its signature headers it is a bad request (400),
    with a wrong signature unauthenticated (401); never accepted."""
    assert response.status_code in (400, 401), response.text
    assert_envelope(response, response.status_code)


def test_the_openai_webhook_wants_a_signature_not_a_key(world: World) -> None:
    routes = routes_with("signed")
    assert routes
    forged = {"webhook-id": "wh_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"}
    for method, path in routes:
        for role in ROLES:
            response = call(world, method, path, world.a.keys[role], a_ids(world))
            assert_refused_unsigned(response)
            with world.gateway.client(world.a.keys[role]) as client:
                signed = client.request(method, path, headers=forged, json={"type": "x"})
            assert_envelope(signed, 401)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_access(world: World, role: str) -> None:
    routes = routes_with("org")
    assert len(routes) >= 25
    allowed_somewhere = False
    with world.gateway.client(world.a.admin) as owner:
        for method, path in routes:
            route = MATRIX[(method, path)]
            ids = a_ids(world)
            if route.disposable is not None:
                ids |= route.disposable(world, owner)
            response = call(world, method, path, world.a.keys[role], ids)
            if role in route.roles:
                allowed_somewhere = True
                assert response.status_code not in (401, 403), (
                    f"{role} {method} {path}: {response.text}"
                )
                assert response.status_code < 500, f"{role} {method} {path}: {response.text}"
            else:
                error = assert_envelope(response, 403)
                assert error["type"] == "permission_error"
    assert allowed_somewhere


def test_another_orgs_objects_are_404_like_ids_that_never_existed(world: World) -> None:
    with_ids = [key for key in routes_with("org", "operator") if "{" in key[1]]
    org_routes = [key for key in with_ids if MATRIX[key].access == "org"]
    assert len(org_routes) >= 15
    for method, path in org_routes:
        theirs = assert_envelope(call(world, method, path, world.b.admin, a_ids(world)), 404)
        nothing = assert_envelope(call(world, method, path, world.b.admin, never_existed()), 404)
        assert (theirs["type"], theirs["code"]) == (nothing["type"], nothing["code"]), path
    # The operator addresses keys through their org: A's key under B's path does not exist.
    revoke = "/admin/orgs/{org_id}/keys/{key_id}"
    ids = {"org_id": world.b.org_id, "key_id": world.a.key_ids["admin"]}
    assert_envelope(call(world, "DELETE", revoke, ADMIN_TOKEN, ids), 404)
    with world.gateway.client(world.a.admin) as owner:
        assert owner.get(f"/v1/files/{world.file_id}").status_code == 200
        assert owner.get(f"/v1/models/{world.model_id}").status_code == 200
        assert owner.get(f"/v1/aliases/{world.alias}").status_code == 200


ID_FORMATS: dict[str, Callable[[str], str]] = {
    "colon": lambda real: real + ":report",
    "star": lambda real: real[:-1] + "*",
    "dots": lambda real: real + "..x",
    "long": lambda real: (real * 300)[:300],
}


def owner_token(world: World, route: Route) -> str:
    return ADMIN_TOKEN if route.access == "operator" else world.a.admin


@pytest.mark.parametrize("shape", sorted(ID_FORMATS))
def test_malformed_ids_are_404_like_ids_that_never_existed(world: World, shape: str) -> None:
    """The id-format column: every path id, made from a real id of A's with a `:` suffix, a `*`,
    `..` or grown to 300 characters, is answered (to A itself) as an unknown id, never by
    reading what the real id names; only a new alias's name is a 400 instead (where it is not a
    name an alias may have)."""
    with_ids = [key for key in routes_with("org", "operator") if "{" in key[1]]
    assert len(with_ids) >= 20
    malformed = {name: ID_FORMATS[shape](real) for name, real in a_ids(world).items()}
    for method, path in with_ids:
        route = MATRIX[(method, path)]
        response = call(world, method, path, owner_token(world, route), malformed)
        if (method, path) == ("PUT", "/v1/aliases/{name}"):  # names a new alias
            if is_valid("alias", malformed["name"]):  # '.' is fine in a name of one's own
                assert response.status_code == 200, response.text
            else:
                assert assert_envelope(response, 400)["param"] == "name"
            continue
        theirs = assert_envelope(response, 404)
        unknown = call(world, method, path, owner_token(world, route), never_existed())
        nothing = assert_envelope(unknown, 404)
        assert (theirs["type"], theirs["code"]) == (nothing["type"], nothing["code"]), path


def error_for(world: World, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    with world.gateway.client(world.b.admin) as client:
        response = client.request(method, path, json=body)
    error = response.json().get("error") or {}
    return response.status_code, (error.get("type"), error.get("code"), error.get("param"))


def test_ids_of_another_org_inside_bodies_are_unknown_ids(world: World) -> None:
    nobody = never_existed()
    messages = [{"role": "user", "content": "hi"}]
    cases: list[tuple[str, str, Callable[[str], dict[str, Any]], str, str]] = [
        (
            "POST",
            "/v1/fine_tuning/jobs",
            lambda file: {"model": BASE_MODEL, "training_file": file},
            world.file_id,
            nobody["file_id"],
        ),
        (
            "POST",
            "/v1/fine_tuning/jobs",
            lambda file: {
                "model": BASE_MODEL,
                "training_file": world.b_file_id,
                "validation_file": file,
            },
            world.file_id,
            nobody["file_id"],
        ),
        ("PUT", "/v1/aliases/borrowed", lambda m: {"model": m}, world.model_id, nobody["model_id"]),
        (
            "POST",
            "/v1/chat/completions",
            lambda m: {"model": m, "messages": messages},
            world.model_id,
            nobody["model_id"],
        ),
        (
            "POST",
            "/v1/chat/completions",
            lambda m: {"model": m, "messages": messages},
            world.alias,
            nobody["name"],
        ),
        (
            "POST",
            "/v1/completions",
            lambda m: {"model": m, "prompt": "hi"},
            world.model_id,
            nobody["model_id"],
        ),
        (
            "POST",
            "/v1/responses",
            lambda r: {"model": BASE_MODEL, "input": "hi", "previous_response_id": r},
            world.response_id,
            nobody["response_id"],
        ),
        (
            "POST",
            "/v1/responses",
            lambda m: {"model": m, "input": "hi"},
            world.model_id,
            nobody["model_id"],
        ),
    ]
    for method, path, body, theirs, unknown in cases:
        status, error = error_for(world, method, path, body(theirs))
        assert status in (400, 404), f"{path} with A's {theirs}: {status} {error}"
        assert (status, error) == error_for(world, method, path, body(unknown)), path


def test_another_orgs_lists_show_nothing_of_a(world: World) -> None:
    lists = [(m, p) for m, p in routes_with("org") if m == "GET" and "{" not in p]
    assert len(lists) >= 7
    secret_ids = {
        world.file_id,
        world.job_id,
        world.model_id,
        world.delivery_id,
        world.sweep_id,
        world.a.org_id,
        *world.a.key_ids.values(),
    }
    # A tenant with no history of its own: B's audit rightly records the ids B tried.
    other = make_tenant(world.gateway, "onlooker")
    seen_by_a = ""
    for method, path in lists:
        response = call(world, method, path, other.admin, {})
        assert response.status_code == 200, f"{path}: {response.text}"
        leaked = sorted(value for value in secret_ids if value in response.text)
        assert not leaked, f"{path} shows another org ids of org A: {leaked}"
        seen_by_a += call(world, method, path, world.a.admin, {}).text
    assert all(value in seen_by_a for value in secret_ids), "A's own lists should show them"
    assert f'"name":"{world.alias}"' in seen_by_a
