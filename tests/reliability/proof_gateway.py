"""A gateway of its own for the reliability proofs, with a callback receiver and a populated world.

`proof_gateway()` runs a whole gateway (embedded Redis, worker threads, sandbox upstream) with
job-done callback retries scaled down. `HookReceiver` is an org's callback endpoint that keeps
every attempt it gets. `build_world` makes two orgs with a key of every role and, in the first,
a real object of every kind the API has: a dataset file, a finished job, its tuned model, an
alias, a callback delivery and a hyperparameter sweep.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from service.domain.tenancy.access import ROLES
from service.sandbox import start_in_thread
from tests.api.conftest import FAST_SANDBOX, GATEWAY_RUN, Gateway, gateway_settings, running_gateway
from tests.api.datasets import chat_jsonl
from tests.support import post_receiver, wait_for

BASE_MODEL = "gpt-4o-mini-2024-07-18"
TERMINAL = ("succeeded", "failed", "cancelled")


@contextmanager
def proof_gateway(data_dir: Path, **overrides: Any) -> Iterator[Gateway]:
    sandbox = start_in_thread(FAST_SANDBOX)
    settings = gateway_settings(
        data_dir, sandbox.base_url_for(GATEWAY_RUN), webhook_retry_scale=0.001, **overrides
    )
    try:
        with running_gateway(settings, sandbox) as running:
            yield running
    finally:
        sandbox.stop()


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HookReceiver:
    """Answers 500 to the first attempt at each event (so retries happen), 200 after."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            event_id = headers.get("tunegate-event-id", "")
            seen = any(d.headers.get("tunegate-event-id") == event_id for d in self.deliveries)
            self.deliveries.append(Delivery(path, headers, body))
        return 200 if seen else 500

    def event_ids(self) -> set[str]:
        with self.lock:
            return {d.headers.get("tunegate-event-id", "") for d in self.deliveries}


@contextmanager
def hook_receiver() -> Iterator[HookReceiver]:
    found = HookReceiver()
    with post_receiver(found.receive) as found.url:
        yield found


@dataclass
class Tenant:
    org_id: str
    keys: dict[str, str]
    key_ids: dict[str, str]

    @property
    def admin(self) -> str:
        return self.keys["admin"]


def make_tenant(gateway: Gateway, name: str, policy: dict[str, Any] | None = None) -> Tenant:
    org_id = gateway.create_org(f"{name}-{secrets.token_hex(3)}", policy)
    keys, key_ids = {}, {}
    for role in ROLES:
        key_ids[role], keys[role] = gateway.create_key(org_id, role, name=f"{name}-{role}")
    return Tenant(org_id, keys, key_ids)


def upload_file(client: httpx.Client, examples: int = 12) -> str:
    data = chat_jsonl(examples, salt=secrets.token_hex(4))
    files = {"file": ("train.jsonl", data, "application/jsonl")}
    response = client.post("/v1/files", files=files, data={"purpose": "fine-tune"})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def create_job(client: httpx.Client, file_id: str, **extra: Any) -> str:
    body = {"model": BASE_MODEL, "training_file": file_id, **extra}
    response = client.post("/v1/fine_tuning/jobs", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def wait_job(client: httpx.Client, job_id: str, statuses: tuple[str, ...] = TERMINAL) -> Any:
    def done() -> Any:
        body = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        return body if body.get("status") in statuses else None

    return wait_for(done, timeout=60, interval=0.1, what=f"{job_id} to be {statuses}")


def create_response(client: httpx.Client, model: str, **extra: Any) -> str:
    """A response the upstream stores (the org's policy must not force `store: false`)."""
    body = {"model": model, "input": "Say hi.", "max_output_tokens": 16, **extra}
    response = client.post("/v1/responses", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def sweep_body(file_id: str) -> dict[str, Any]:
    return {
        "model": BASE_MODEL,
        "training_file": file_id,
        "validation_split": 0.25,
        "search": {"type": "grid"},
        "space": {"n_epochs": [1, 2]},
        "max_parallel": 1,
    }


def eval_body() -> dict[str, Any]:
    check = {
        "type": "string_check",
        "name": "exact",
        "input": "{{sample.output_text}}",
        "reference": "{{item.answer}}",
        "operation": "eq",
    }
    source = {"type": "custom", "item_schema": {"type": "object"}}
    return {"name": "world", "data_source_config": source, "testing_criteria": [check]}


def run_body() -> dict[str, Any]:
    """A run that grades answers given inline (no model sampled)."""
    rows = [{"item": {"answer": "hi"}, "sample": {"output_text": "hi"}}]
    return {"data_source": {"type": "jsonl", "source": {"type": "file_content", "content": rows}}}


@dataclass
class World:
    """Org `a` owns one real object of each kind; org `b` owns its own (for list checks)."""

    gateway: Gateway
    a: Tenant
    b: Tenant
    file_id: str
    job_id: str
    model_id: str
    alias: str
    delivery_id: str
    sweep_id: str
    b_file_id: str
    response_id: str  # a stored background response of org `a`
    eval_id: str
    run_id: str
    output_item_id: str


def build_world(gateway: Gateway, receiver: HookReceiver) -> World:
    policy = {"pii": "allow", "webhook_url": receiver.url, "force_store_false": False}
    a, b = make_tenant(gateway, "org-a", policy), make_tenant(gateway, "org-b", policy)
    rotated = gateway.admin.post(f"/admin/orgs/{a.org_id}/webhook-secret")
    assert rotated.status_code == 200, rotated.text
    with gateway.client(a.admin) as client:
        file_id = upload_file(client)
        job_id = create_job(client, file_id)
        job = wait_job(client, job_id)
        assert job["status"] == "succeeded", job
        alias = "world-alias"
        put = client.put(f"/v1/aliases/{alias}", json={"model": job["fine_tuned_model"]})
        assert put.status_code == 200, put.text
        sweep = client.post("/v1/sweeps", json=sweep_body(file_id))
        assert sweep.status_code == 200, sweep.text
        delivery = wait_for(
            lambda: client.get("/v1/webhooks/deliveries").json()["data"],
            timeout=30,
            what="a callback delivery",
        )
        response_id = create_response(client, job["fine_tuned_model"], background=True)
        made_eval = client.post("/v1/evals", json=eval_body())
        assert made_eval.status_code == 200, made_eval.text
        runs = f"/v1/evals/{made_eval.json()['id']}/runs"
        run = client.post(runs, json=run_body())
        assert run.status_code == 200, run.text
        output_items = wait_for(
            lambda: client.get(f"{runs}/{run.json()['id']}/output_items").json()["data"],
            timeout=30,
            what="an eval run's output item",
        )
    with gateway.client(b.admin) as client:
        b_file_id = upload_file(client)
    return World(
        gateway=gateway,
        a=a,
        b=b,
        file_id=file_id,
        job_id=job_id,
        model_id=str(job["fine_tuned_model"]),
        alias=alias,
        delivery_id=str(delivery[0]["id"]),
        sweep_id=str(sweep.json()["id"]),
        b_file_id=b_file_id,
        response_id=response_id,
        eval_id=str(made_eval.json()["id"]),
        run_id=str(run.json()["id"]),
        output_item_id=str(output_items[0]["id"]),
    )
