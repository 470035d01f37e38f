"""No secret anywhere, over a whole mixed run of a gateway.

One gateway is started inside the test (so every log line of its life is captured, from worker
start to shutdown) and driven through a broad workload: orgs, keys and policies; uploads, valid,
invalid and with PII; jobs to success, cancelled and failed, with their events, metrics and
callbacks; completions, streams, legacy completions and aliases; upstream faults, rate limits,
wrong and revoked keys. Then every log line, every response (body and headers), both orgs' audit
exports and every callback the receiver got are searched for the upstream key, the admin token,
every org key (and its secret part) and the orgs' callback signing secrets.

Keys and signing secrets are created through an unrecorded client: their one showing is the
contract, and everything after it is searched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.logging import configure_logging
from tests.api.conftest import ADMIN_TOKEN, GATEWAY_RUN, UPSTREAM_KEY, Gateway
from tests.api.datasets import chat_jsonl, with_line
from tests.reliability.proof_gateway import (
    BASE_MODEL,
    HookReceiver,
    Tenant,
    hook_receiver,
    make_tenant,
    proof_gateway,
    wait_job,
)
from tests.support import wait_for

UPSTREAM_ATTEMPTS = 3  # the gateway retries an upstream failure twice
MESSAGES = [{"role": "user", "content": "Write to me at jane.doe@example.com please."}]


@dataclass
class Seen:
    """Every response the workload got, as `METHOD path status` and headers plus body."""

    responses: list[tuple[str, str]] = field(default_factory=list)

    def record(self, response: httpx.Response) -> None:
        response.read()
        label = f"{response.request.method} {response.request.url.path} {response.status_code}"
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        self.responses.append((label, headers + "\n\n" + response.text))

    def statuses(self) -> set[int]:
        return {int(label.rsplit(" ", 1)[1]) for label, _ in self.responses}


@dataclass
class Run:
    gateway: Gateway
    receiver: HookReceiver
    seen: Seen
    clients: ExitStack

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        client = httpx.Client(
            base_url=self.gateway.url,
            headers=headers,
            timeout=30,
            event_hooks={"response": [self.seen.record]},
        )
        return self.clients.enter_context(client)

    def fault(self, **spec: Any) -> None:
        response = httpx.post(
            f"{self.gateway.sandbox.url}/runs/{GATEWAY_RUN}/_sandbox/faults",
            json=spec,
            headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text


@contextmanager
def workload_gateway(data_dir: Path) -> Iterator[Run]:
    configure_logging("json", "info")
    with ExitStack() as clients, hook_receiver() as receiver, proof_gateway(data_dir) as gateway:
        yield Run(gateway, receiver, Seen(), clients)


def upload(client: httpx.Client, data: bytes) -> httpx.Response:
    files = {"file": ("train.jsonl", data, "application/jsonl")}
    return client.post("/v1/files", files=files, data={"purpose": "fine-tune"})


def operator_work(run: Run, a: Tenant) -> None:
    admin = run.client(ADMIN_TOKEN)
    admin.get("/admin/orgs")
    admin.get(f"/admin/orgs/{a.org_id}")
    admin.get(f"/admin/orgs/{a.org_id}/keys")
    policy = admin.get(f"/admin/orgs/{a.org_id}").json()["policy"]
    assert admin.put(f"/admin/orgs/{a.org_id}/policy", json=policy).status_code == 200
    assert admin.put(f"/admin/orgs/{a.org_id}/policy", json={"nope": 1}).status_code == 400
    assert run.client(ADMIN_TOKEN + "x").get("/admin/orgs").status_code == 401
    assert run.client(a.admin).get("/admin/orgs").status_code == 401


def dataset_work(run: Run, member: httpx.Client) -> str:
    valid = upload(member, chat_jsonl(14, salt="valid"))
    assert valid.status_code == 200, valid.text
    file_id = str(valid.json()["id"])
    bad = upload(member, with_line(chat_jsonl(12), 3, b"{not json"))
    assert bad.status_code == 400 and bad.json()["error"]["line"] == 3
    pii = chat_jsonl(12, salt="mail me at someone@example.com, ")
    assert upload(member, pii).status_code == 200
    for suffix in ("", "/report", "/content"):
        assert member.get(f"/v1/files/{file_id}{suffix}").status_code == 200
    member.get("/v1/files")
    return file_id


def job_work(run: Run, member: httpx.Client, file_id: str) -> str:
    body = {"model": BASE_MODEL, "training_file": file_id, "suffix": "secrets"}
    headers = {"Idempotency-Key": "secrets-run-1"}
    job = member.post("/v1/fine_tuning/jobs", json=body, headers=headers).json()
    again = member.post("/v1/fine_tuning/jobs", json=body, headers=headers).json()
    assert again["id"] == job["id"]
    conflict = member.post("/v1/fine_tuning/jobs", json={**body, "suffix": "x"}, headers=headers)
    assert conflict.status_code == 409
    done = wait_job(member, job["id"])
    assert done["status"] == "succeeded", done
    base = f"/v1/fine_tuning/jobs/{job['id']}"
    for suffix in ("/events", "/checkpoints", "/metrics", "/metrics.svg"):
        assert member.get(base + suffix).status_code == 200
    assert member.get(base + "/metrics", headers={"Accept": "text/csv"}).status_code == 200
    cancelled = member.post("/v1/fine_tuning/jobs", json={**body, "suffix": "cancelled"}).json()
    wait_for(
        lambda: member.post(f"/v1/fine_tuning/jobs/{cancelled['id']}/cancel").status_code == 200,
        timeout=30,
        what="a cancel that takes",
    )
    doomed = upload(member, chat_jsonl(12, salt="doomed")).json()["id"]
    failed = member.post(
        "/v1/fine_tuning/jobs", json={"model": BASE_MODEL, "training_file": doomed}
    ).json()
    member.delete(f"/v1/files/{doomed}")
    assert wait_job(member, failed["id"])["status"] == "failed"
    member.get("/v1/fine_tuning/jobs")
    return str(done["fine_tuned_model"])


def inference_work(run: Run, a: Tenant, model: str) -> None:
    member, inference = run.client(a.keys["member"]), run.client(a.keys["inference"])
    chat = {"model": model, "messages": MESSAGES, "max_tokens": 8}
    assert inference.post("/v1/chat/completions", json=chat).status_code == 200
    with inference.stream("POST", "/v1/chat/completions", json={**chat, "stream": True}) as reply:
        assert reply.status_code == 200
        assert "[DONE]" in "".join(reply.iter_text())
    legacy = {"model": "davinci-002", "prompt": "Say hi", "max_tokens": 5}
    assert inference.post("/v1/completions", json=legacy).status_code == 200
    assert member.put("/v1/aliases/bot", json={"model": model}).status_code == 200
    assert inference.post("/v1/chat/completions", json={**chat, "model": "bot"}).status_code == 200
    assert inference.post("/v1/chat/completions", json={**chat, "model": "nope"}).status_code == 404
    assert inference.post("/v1/chat/completions", content=b"{not json").status_code == 400
    assert inference.get("/v1/files").status_code == 403
    run.fault(kind="500", path_prefix="/v1/chat/completions", count=UPSTREAM_ATTEMPTS)
    assert inference.post("/v1/chat/completions", json=chat).status_code >= 500
    run.fault(kind="429", path_prefix="/v1/chat/completions", count=UPSTREAM_ATTEMPTS)
    assert inference.post("/v1/chat/completions", json=chat).status_code == 429
    member.get("/v1/models")
    member.get(f"/v1/models/{model}")
    member.get("/v1/usage", params={"group_by": "model,key,day"})


def limit_and_revoke_work(run: Run, a: Tenant, b: Tenant) -> None:
    limited = run.client(b.keys["inference"])
    chat = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 4}
    statuses = [limited.post("/v1/chat/completions", json=chat).status_code for _ in range(4)]
    assert 429 in statuses, statuses
    revoked = run.client(ADMIN_TOKEN).delete(f"/admin/orgs/{b.org_id}/keys/{b.key_ids['member']}")
    assert revoked.status_code == 200
    assert run.client(b.keys["member"]).get("/v1/models").status_code == 401
    assert run.client(a.admin + "tampered").get("/v1/models").status_code == 401
    assert run.client("sk-" + UPSTREAM_KEY[3:]).get("/v1/models").status_code == 401


def cleanup_work(run: Run, a: Tenant, model: str, file_id: str) -> None:
    member = run.client(a.keys["member"])
    assert member.delete("/v1/aliases/bot").status_code == 200
    assert member.delete(f"/v1/models/{model}").status_code == 200
    assert member.delete(f"/v1/files/{file_id}").status_code == 200
    run.client().get("/metrics")
    run.client().get("/health")


def drive(run: Run) -> tuple[list[Tenant], list[str]]:
    gateway = run.gateway
    policy = {"pii": "redact", "log_content": "full", "webhook_url": run.receiver.url}
    a = make_tenant(gateway, "secrets-a", policy)
    b = make_tenant(gateway, "secrets-b", {"rate_limits": {"requests_per_minute": 2}})
    signing = []
    for org in (a, b):
        rotated = gateway.admin.post(f"/admin/orgs/{org.org_id}/webhook-secret")
        signing.append(str(rotated.json()["secret"]))
    operator_work(run, a)
    member = run.client(a.keys["member"])
    file_id = dataset_work(run, member)
    model = job_work(run, member, file_id)
    inference_work(run, a, model)
    limit_and_revoke_work(run, a, b)
    wait_for(lambda: len(run.receiver.event_ids()) >= 3, timeout=30, what="three callbacks")
    wait_for(
        lambda: all(
            d["status"] == "delivered" for d in member.get("/v1/webhooks/deliveries").json()["data"]
        ),
        timeout=30,
        what="callbacks delivered after their retries",
    )
    cleanup_work(run, a, model, file_id)
    return [a, b], signing


def secrets_of(tenants: list[Tenant], signing: list[str]) -> dict[str, str]:
    found = {"upstream key": UPSTREAM_KEY, "admin token": ADMIN_TOKEN}
    for tenant in tenants:
        for role, key in tenant.keys.items():
            found[f"{tenant.org_id} {role} key"] = key
            found[f"{tenant.org_id} {role} key secret"] = key.split("_", 2)[2]
    for index, secret in enumerate(signing):
        found[f"signing secret {index}"] = secret
    return found


def leaks(places: dict[str, str], secrets: dict[str, str]) -> list[str]:
    return [
        f"{name} in {where}"
        for where, text in places.items()
        for name, secret in secrets.items()
        if secret in text
    ]


def test_no_secret_in_logs_responses_audit_or_callbacks(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with workload_gateway(tmp_path) as run:
        tenants, signing = drive(run)
        audits = {
            f"audit export of {t.org_id}": run.client(t.admin).get("/v1/audit/export").text
            for t in tenants
        }
        callbacks = {
            f"callback {i} to {d.path}": json.dumps(d.headers) + "\n" + d.body.decode()
            for i, d in enumerate(run.receiver.deliveries)
        }
        responses = {
            f"response {i} {label}": text for i, (label, text) in enumerate(run.seen.responses)
        }
    captured = capfd.readouterr()
    logs = {"stdout": captured.out, "stderr": captured.err}
    found = leaks({**logs, **responses, **audits, **callbacks}, secrets_of(tenants, signing))
    assert not found, found
    # The search covered what it claims to.
    log_lines = [line for line in captured.err.splitlines() if line.startswith("{")]
    assert len(log_lines) > 50 and '"rq.scheduler"' in captured.err
    assert '"Started server process' in captured.err and '"Shutting down"' in captured.err
    assert {200, 400, 401, 403, 404, 409, 429}.issubset(run.seen.statuses())
    assert any(status >= 500 for status in run.seen.statuses())
    assert len(run.seen.responses) > 60
    assert all(audit.count("\n") > 10 for audit in audits.values())
    assert "chat.completions.create" in "".join(audits.values())
    assert len(run.receiver.deliveries) >= 6 and len(run.receiver.event_ids()) >= 3
