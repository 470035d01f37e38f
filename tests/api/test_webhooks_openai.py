"""OpenAI's fine-tuning webhooks: verified with OPENAI_WEBHOOK_SECRET, mapped to our job through
the upstream id, and acted on by polling the job at once; anything else is refused or ignored."""

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


def due_at(gateway: Gateway, job_id: str) -> float:
    client = connect_sync_redis(gateway.settings.redis_url or "")
    try:
        return float(orjson.loads(client.get(f"tg:job:{job_id}") or b"{}")["due_at"])
    finally:
        client.close()


QUIET_SECONDS = 10.0  # more than a loaded machine needs to act on a webhook


def quiet(gateway: Gateway, job_id: str) -> float:
    """Wait until the job's next regular poll is `QUIET_SECONDS` off (polls back off while a job
    runs); returns when it is due. A poll before then was the webhook's."""
    wait_for(
        lambda: due_at(gateway, job_id) > time.time() + QUIET_SECONDS,
        timeout=45,
        what="a quiet job",
    )
    return due_at(gateway, job_id)


@pytest.fixture()
def running_job(hooked: Gateway) -> Iterator[tuple[Tenant, str, str]]:
    """A job that runs long upstream, polled less and less often: (tenant, job, upstream)."""
    with tenant(hooked) as org:
        job = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(org.sdk))
        wait_status(org.sdk, job.id, ("running",))
        yield org, job.id, upstream_id_of(hooked, job.id)
        org.sdk.fine_tuning.jobs.cancel(job.id)


def test_a_verified_event_polls_the_job_at_once_and_only_once(
    hooked: Gateway, running_job: tuple[Tenant, str, str]
) -> None:
    org, job_id, upstream = running_job
    scheduled = quiet(hooked, job_id)
    request = signed(job_event(upstream), "wh_1")
    with httpx.Client(base_url=hooked.url, timeout=10) as client:
        response = client.post("/v1/webhooks/openai", **request)
        assert response.status_code == 200 and response.json() == {"received": True}
        wait_for(  # woken (due now), then polled (due again later)
            lambda: scheduled != due_at(hooked, job_id) > time.time(),
            timeout=QUIET_SECONDS - 2,
            what="an early poll",
        )
        assert time.time() < scheduled
        rescheduled = due_at(hooked, job_id)
        assert client.post("/v1/webhooks/openai", **request).status_code == 200  # OpenAI retried
    time.sleep(2)  # time for a second wake-up, were the retry not recognised
    assert due_at(hooked, job_id) == rescheduled
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
