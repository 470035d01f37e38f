"""Every route that can cost money checks the budget: with its budget exhausted, an org is
refused (`insufficient_quota`) on every route of the app that is not documented here as costing
nothing. A route added later is covered without anyone remembering this test: until it refuses
an exhausted org, or is listed below with the reason it costs nothing, this test fails.

Reads (GET, HEAD, OPTIONS) and deletions (DELETE) never call a priced upstream endpoint, so
they cost nothing by rule; every other method is either in `NON_COSTING` or must refuse.
"""

from __future__ import annotations

import re
from typing import Any

from service.config import Settings
from service.http.app import create_app
from service.ids import new_id
from service.operations.context import Context
from service.store import Store
from tests.api.conftest import Gateway
from tests.api.jobs_helpers import tenant, upload

FREE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
NON_COSTING: dict[tuple[str, str], str] = {
    ("POST", "/admin/orgs"): "operator: creates an org",
    ("POST", "/admin/orgs/{org_id}/keys"): "operator: issues a key",
    ("PUT", "/admin/orgs/{org_id}/policy"): "operator: writes the policy",
    ("PATCH", "/admin/orgs/{org_id}/policy"): "operator: writes the policy",
    ("POST", "/admin/orgs/{org_id}/webhook-secret"): "operator: rotates a secret",
    ("POST", "/v1/keys"): "org admin: issues a key",
    ("POST", "/v1/files"): "stores and validates a dataset; uploading it upstream is free",
    ("PUT", "/v1/aliases/{name}"): "names a model",
    ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel"): "stops spending",
    ("POST", "/v1/fine_tuning/jobs/{job_id}/pause"): "stops spending",
    ("POST", "/v1/fine_tuning/jobs/{job_id}/resume"): "the job's reservation is held since "
    "it was created, until it ends",
    ("POST", "/v1/sweeps/{sweep_id}/cancel"): "stops spending",
    ("POST", "/v1/responses/{response_id}/cancel"): "stops a background response",
    ("POST", "/v1/sweeps/{sweep_id}/promote"): "names the best trial's model",
    ("POST", "/v1/webhooks/openai"): "OpenAI's events about jobs",
    ("POST", "/v1/evals"): "stores an eval's criteria; its runs are what call models",
    ("POST", "/v1/evals/{eval_id}"): "renames an eval",
    ("POST", "/v1/evals/{eval_id}/runs/{run_id}/cancel"): "stops spending",
}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


ID_PREFIXES = {"eval_id": "eval_", "run_id": "evalrun_"}  # OpenAI's own prefixes


def id_prefix(param: str) -> str:
    return ID_PREFIXES.get(param, f"{param[:-3]}-")


def routes() -> list[tuple[str, str]]:
    settings = Settings(redis_url="redis://127.0.0.1:1/0")
    app = create_app(Context(settings=settings, store=Store(settings.redis_url or "")))
    found = set()
    for route in app.routes:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in getattr(route, "methods", set()) or set():
            if method not in FREE_METHODS and not path.startswith(("/console", "/openapi")):
                found.add((method, path))
    return sorted(found)


def body_for(path: str, training_file: str, validation_file: str) -> dict[str, Any]:
    """A request the route would accept from an org with money left."""
    job = {"model": "gpt-4o-mini", "training_file": training_file}
    bodies: dict[str, dict[str, Any]] = {
        "/v1/chat/completions": CHAT,
        "/v1/completions": {"model": "gpt-4o-mini", "prompt": "hi", "max_tokens": 5},
        "/v1/fine_tuning/jobs": job,
        "/v1/sweeps": {
            **job,
            "validation_file": validation_file,
            "search": {"type": "grid"},
            "space": {"n_epochs": [1, 2]},
        },
    }
    # A route added later: the shape most of OpenAI's priced endpoints accept.
    return bodies.get(path, {**CHAT, "input": "hi", "prompt": "hi"})


def test_the_non_costing_list_names_only_routes_of_the_app() -> None:
    assert set(NON_COSTING) <= set(routes()), set(NON_COSTING) - set(routes())


def test_every_costing_route_refuses_an_org_whose_budget_is_spent(gateway: Gateway) -> None:
    costing = [route for route in routes() if route not in NON_COSTING]
    assert ("POST", "/v1/chat/completions") in costing
    with tenant(gateway, {"budgets": {"monthly_usd": 0}}, role="admin") as org:
        training, validation = upload(org.sdk), upload(org.sdk, name="valid.jsonl")
        before = len(gateway.upstream_requests())
        with gateway.client(org.key) as client:
            for method, path in costing:
                url = re.sub(r"\{(\w+)\}", lambda m: new_id(id_prefix(m.group(1))), path)
                response = client.request(method, url, json=body_for(path, training, validation))
                error = response.json().get("error") or {}
                assert error.get("code") == "insufficient_quota", (
                    f"{method} {path} answered {response.status_code} {response.text}: a route "
                    "that can cost money must check the budget (see operations/budgets); one "
                    "that cannot goes in NON_COSTING with the reason"
                )
        costly = [
            entry
            for entry in gateway.upstream_requests()[before:]
            if not entry["path"].startswith("/v1/files")
        ]
        assert costly == []
