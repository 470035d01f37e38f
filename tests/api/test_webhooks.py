"""Job-done callbacks: signed with the org's secret, retried until the receiver takes them, the
same event id on every attempt, every attempt listed; and the secret is shown once."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from service.sandbox import start_in_thread
from tests.api.conftest import FAST_SANDBOX, GATEWAY_RUN, Gateway, gateway_settings, running_gateway
from tests.api.jobs_helpers import Tenant, cancel, dumps, tenant, upload, wait_status
from tests.support import post_receiver, wait_for

FAILURES_BEFORE_SUCCESS = 2


@dataclass
class Receiver:
    """A job-done callback receiver as an org would write one: it checks the signature, answers
    500 to the first two attempts at each event, and acts on each event id once."""

    secret: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    handled: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, headers: dict[str, str], body: bytes) -> int:
        event_id = headers["tunegate-event-id"]
        with self.lock:
            tries = sum(1 for attempt in self.attempts if attempt["event_id"] == event_id)
            status = 500 if tries < FAILURES_BEFORE_SUCCESS else 200
            verified = self.verify(headers["tunegate-signature"], body)
            self.attempts.append({"event_id": event_id, "status": status, "verified": verified})
            if status == 200 and verified and event_id not in self.handled:
                self.handled[event_id] = orjson.loads(body)
        return status

    def verify(self, header: str, body: bytes) -> bool:
        parts = dict(part.split("=", 1) for part in header.split(","))
        signed = f"{parts['t']}.".encode() + body
        expected = hmac.new(self.secret.encode(), signed, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts["v1"])

    def events_for(self, job_id: str) -> list[dict[str, Any]]:
        return [event for event in self.handled.values() if event["data"]["id"] == job_id]


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    found = Receiver()
    with post_receiver(lambda path, headers, body: found.receive(headers, body)) as url:
        yield found, url


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose callback retries come within a second (the schedule scaled down)."""
    sandbox = start_in_thread(FAST_SANDBOX)
    settings = gateway_settings(
        tmp_path_factory.mktemp("hooks"),
        sandbox.base_url_for(GATEWAY_RUN),
        webhook_retry_scale=0.01,
    )
    try:
        with running_gateway(settings, sandbox) as running:
            yield running
    finally:
        sandbox.stop()


@pytest.fixture()
def org(hooked: Gateway, receiver: tuple[Receiver, str]) -> Iterator[Tenant]:
    with tenant(hooked, policy={"webhook_url": receiver[1]}) as found:
        response = hooked.admin.post(f"/admin/orgs/{found.org_id}/webhook-secret")
        assert response.status_code == 200
        receiver[0].secret = response.json()["secret"]
        yield found


def delivered(receiver: Receiver, job_id: str) -> list[dict[str, Any]]:
    return wait_for(lambda: receiver.events_for(job_id), timeout=30, what=f"callback {job_id}")


def recorded_delivery(
    gateway: Gateway, key: str, job_id: str, status: str
) -> dict[str, Any] | None:
    with gateway.client(key) as client:
        listed = client.get("/v1/webhooks/deliveries").json()
    found = [d for d in listed["data"] if d["job_id"] == job_id and d["status"] == status]
    return found[0] if found else None


def test_a_succeeded_job_is_called_back_once_despite_two_failures(
    hooked: Gateway, org: Tenant, receiver: tuple[Receiver, str]
) -> None:
    job = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(org.sdk))
    final = wait_status(org.sdk, job.id)
    [event] = delivered(receiver[0], job.id)
    assert event["type"] == "fine_tuning.job.succeeded"
    assert event["object"] == "event" and event["id"].startswith("evt_")
    assert event["data"]["status"] == "succeeded"
    assert event["data"]["fine_tuned_model"] == final.fine_tuned_model
    attempts = [a for a in receiver[0].attempts if a["event_id"] == event["id"]]
    assert [a["status"] for a in attempts] == [500, 500, 200]
    assert all(attempt["verified"] for attempt in attempts)
    delivery = wait_for(
        lambda: recorded_delivery(hooked, org.key, job.id, "delivered"),
        timeout=30,
        what="the 200 recorded",  # the receiver counts the event before its 200 is read
    )
    assert delivery["event_id"] == event["id"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert delivery["event_type"] == "fine_tuning.job.succeeded"


def test_cancelled_and_failed_jobs_are_called_back_too(
    hooked: Gateway, org: Tenant, receiver: tuple[Receiver, str]
) -> None:
    training = upload(org.sdk)
    cancelled = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    cancel(org.sdk, cancelled.id)
    doomed = upload(org.sdk)
    failed = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=doomed)
    org.sdk.files.delete(doomed)  # gone before the job could start: it fails at the gateway
    assert wait_status(org.sdk, failed.id).status == "failed"
    assert org.sdk.fine_tuning.jobs.retrieve(failed.id).error.param == "training_file"  # type: ignore[union-attr]
    [on_cancel] = delivered(receiver[0], cancelled.id)
    [on_failure] = delivered(receiver[0], failed.id)
    assert on_cancel["type"] == "fine_tuning.job.cancelled"
    assert on_failure["type"] == "fine_tuning.job.failed"
    assert on_failure["data"]["error"]["param"] == "training_file"


def test_the_secret_is_shown_once_and_nowhere_else(hooked: Gateway, org: Tenant) -> None:
    first = hooked.admin.post(f"/admin/orgs/{org.org_id}/webhook-secret").json()["secret"]
    second = hooked.admin.post(f"/admin/orgs/{org.org_id}/webhook-secret").json()["secret"]
    assert first.startswith("whsec_") and second.startswith("whsec_") and first != second
    _, admin_key = hooked.create_key(org.org_id, "admin")
    with hooked.client(admin_key) as client:
        audit = client.get("/v1/audit/export").text
    shown = dumps(hooked.admin.get(f"/admin/orgs/{org.org_id}").json())
    shown += dumps(hooked.admin.get("/admin/orgs").json()) + audit
    assert first not in shown and second not in shown
    assert "orgs.webhook_secret.rotate" in audit
    assert hooked.admin.post("/admin/orgs/org_nope/webhook-secret").status_code == 404
    with hooked.client(org.key) as client:
        assert client.post(f"/admin/orgs/{org.org_id}/webhook-secret").status_code == 401


def test_deliveries_are_the_orgs_own(hooked: Gateway, org: Tenant) -> None:
    with tenant(hooked) as other, hooked.client(other.key) as client:
        assert client.get("/v1/webhooks/deliveries").json()["data"] == []
    with hooked.client() as anonymous:
        assert anonymous.get("/v1/webhooks/deliveries").status_code == 401
    _, inference_key = hooked.create_key(org.org_id, "inference")
    with hooked.client(inference_key) as limited:
        assert limited.get("/v1/webhooks/deliveries").status_code == 403
    with hooked.client(org.key) as client:
        bad = client.get("/v1/webhooks/deliveries", params={"limit": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
