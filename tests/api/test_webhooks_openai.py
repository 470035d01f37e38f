"""OpenAI's fine-tuning webhooks: verified with OPENAI_WEBHOOK_SECRET, mapped to our job through
the upstream id, and acted on by running the poll cycle at once; anything else is refused or
ignored."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from service.domain.webhooks.signing import sign_openai_webhook
from service.queue import connect_sync_redis
from service.sandbox import start_in_thread
from tests.api.conftest import GATEWAY_RUN, Gateway, gateway_settings, running_gateway
from tests.api.jobs_helpers import SLOW_SANDBOX, Tenant, tenant, upload, upstream_id_of, wait_status
from tests.support import wait_for

SECRET = "whsec_" + base64.b64encode(b"openai-webhook-test-secret-0123").decode()


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    sandbox = start_in_thread(SLOW_SANDBOX)
    settings = gateway_settings(
        tmp_path_factory.mktemp("openai-hooks"),
        sandbox.base_url_for(GATEWAY_RUN),
        openai_webhook_secret=SecretStr(SECRET),
    )
    try:
        with running_gateway(settings, sandbox) as running:
            yield running
    finally:
        sandbox.stop()


def signed(event: dict[str, Any], webhook_id: str, secret: str = SECRET) -> dict[str, Any]:
    body = orjson.dumps(event)
    stamp = int(time.time())
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign_openai_webhook(secret, webhook_id, stamp, body),
        "content-type": "application/json",
    }
    return {"content": body, "headers": headers}


def job_event(upstream_id: str, kind: str = "fine_tuning.job.succeeded") -> dict[str, Any]:
    return {
        "id": f"evt_{time.time_ns()}",
        "object": "event",
        "created_at": int(time.time()),
        "type": kind,
        "data": {"id": upstream_id},
    }


def poll_cycles_run_at_once(gateway: Gateway) -> set[str]:
    """The poll cycles queued to run at once (`tg-poll-now-<second>`), as RQ keeps them."""
    client = connect_sync_redis(gateway.settings.redis_url or "")
    try:
        return {key.decode() for key in client.scan_iter("rq:job:tg-poll-now-*")}
    finally:
        client.close()


@pytest.fixture()
def running_job(hooked: Gateway) -> Iterator[tuple[Tenant, str, str]]:
    """A job that runs long upstream, polled less and less often: (tenant, job, upstream)."""
    with tenant(hooked) as org:
        job = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(org.sdk))
        wait_status(org.sdk, job.id, ("running",))
        yield org, job.id, upstream_id_of(hooked, job.id)
        org.sdk.fine_tuning.jobs.cancel(job.id)


def test_a_verified_event_runs_the_poll_cycle_at_once_and_only_once(
    hooked: Gateway, running_job: tuple[Tenant, str, str]
) -> None:
    org, job_id, upstream = running_job
    before = poll_cycles_run_at_once(hooked)
    request = signed(job_event(upstream), "wh_1")
    with httpx.Client(base_url=hooked.url, timeout=10) as client:
        response = client.post("/v1/webhooks/openai", **request)
        assert response.status_code == 200 and response.json() == {"received": True}
        queued = wait_for(
            lambda: poll_cycles_run_at_once(hooked) - before,
            timeout=10,
            what="a poll cycle run at once",
        )
        assert len(queued) == 1
        time.sleep(1.1)  # a second wake-up would now be a task of its own
        assert client.post("/v1/webhooks/openai", **request).status_code == 200  # OpenAI retried
    time.sleep(2)
    assert poll_cycles_run_at_once(hooked) - before == queued
    _, admin_key = hooked.create_key(org.org_id, "admin")
    with hooked.client(admin_key) as client:
        audit = client.get("/v1/audit", params={"action": "webhooks.openai"}).json()["data"]
    assert audit and audit[0]["resource_id"] == job_id


def test_other_events_and_unknown_jobs_are_acknowledged_and_ignored(hooked: Gateway) -> None:
    with httpx.Client(base_url=hooked.url, timeout=10) as client:
        other = client.post(
            "/v1/webhooks/openai", **signed(job_event("batch_1", "batch.completed"), "wh_2")
        )
        unknown = client.post("/v1/webhooks/openai", **signed(job_event("ftjob-x"), "wh_3"))
    assert other.status_code == unknown.status_code == 200


BAD: list[tuple[str, dict[str, str], int]] = [
    ("wrong secret", {}, 401),
    ("stale", {"webhook-timestamp": str(int(time.time()) - 3600)}, 401),
    ("no signature", {"webhook-signature": ""}, 400),
    ("no id", {"webhook-id": ""}, 400),
]


@pytest.mark.parametrize(("case", "override", "status"), BAD, ids=[case[0] for case in BAD])
def test_unverified_events_are_refused(
    hooked: Gateway, case: str, override: dict[str, str], status: int
) -> None:
    secret = (
        "whsec_" + base64.b64encode(b"someone-else").decode() if case == "wrong secret" else SECRET
    )
    request = signed(job_event("ftjob-x"), "wh_bad", secret)
    request["headers"] = {**request["headers"], **override}
    with httpx.Client(base_url=hooked.url, timeout=10) as client:
        response = client.post("/v1/webhooks/openai", **request)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_without_a_secret_the_endpoint_refuses(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        response = client.post("/v1/webhooks/openai", **signed(job_event("ftjob-x"), "wh_4"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "webhooks_not_configured"
