"""Queueing and control: `max_concurrent_jobs` (FIFO per org, nothing refused), cancel at the
gateway and upstream, pause and resume, and moves the state machine refuses (409)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import OpenAI

from service.sandbox import start_in_thread
from tests.api.conftest import GATEWAY_RUN, Gateway, gateway_settings, running_gateway
from tests.api.jobs_helpers import (
    SLOW_SANDBOX,
    calls_for,
    tenant,
    upload,
    upstream_creates,
    upstream_id_of,
    wait_status,
)
from tests.support import wait_for


def saw_cancel_event(sdk: OpenAI, job_id: str) -> bool:
    """The upstream's own cancel event reached the job's events (its last poll ran)."""
    events = sdk.fine_tuning.jobs.list_events(job_id, limit=100).data
    return any("cancelled" in event.message for event in events)


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose upstream jobs run for about 40 seconds."""
    sandbox = start_in_thread(SLOW_SANDBOX)
    settings = gateway_settings(tmp_path_factory.mktemp("slow"), sandbox.base_url_for(GATEWAY_RUN))
    try:
        with running_gateway(settings, sandbox) as running:
            yield running
    finally:
        sandbox.stop()


def test_jobs_past_the_limit_wait_and_start_in_order(gateway: Gateway) -> None:
    with tenant(gateway, policy={"max_concurrent_jobs": 1}) as org:
        training = upload(org.sdk)
        first, second, third = (
            org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
            for _ in range(3)
        )
        assert first.status == second.status == third.status == "queued"
        done = [wait_status(org.sdk, job.id).finished_at for job in (first, second, third)]
        created = [upstream_creates(gateway, job.id)[0]["at"] for job in (first, second, third)]
        assert created == sorted(created)
        # each started upstream only once the one before had ended
        assert created[1] >= done[0] and created[2] >= done[1]  # type: ignore[operator]


def test_cancel_at_the_gateway_never_reaches_the_upstream(slow: Gateway) -> None:
    with tenant(slow, policy={"max_concurrent_jobs": 1}) as org:
        training = upload(org.sdk)
        running = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
        waiting = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
        wait_status(org.sdk, running.id, ("running",))
        assert org.sdk.fine_tuning.jobs.retrieve(waiting.id).status == "queued"
        cancelled = org.sdk.fine_tuning.jobs.cancel(waiting.id)
        assert cancelled.status == "cancelled"
        org.sdk.fine_tuning.jobs.cancel(running.id)
        wait_for(lambda: saw_cancel_event(org.sdk, running.id), timeout=15, what="cancel event")
        assert upstream_creates(slow, waiting.id) == []
        assert org.sdk.fine_tuning.jobs.retrieve(waiting.id).status == "cancelled"
        said = [e.message for e in org.sdk.fine_tuning.jobs.list_events(waiting.id).data]
        assert said[0] == "Fine-tuning job cancelled before it was handed to the upstream"
        assert said[1].startswith("Waiting at the gateway")


def test_cancel_while_running_cancels_upstream_and_frees_the_slot(slow: Gateway) -> None:
    with tenant(slow, policy={"max_concurrent_jobs": 1}) as org:
        training = upload(org.sdk)
        first = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
        second = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
        wait_status(org.sdk, first.id, ("running",))
        assert org.sdk.fine_tuning.jobs.cancel(first.id).status == "cancelled"
        upstream = upstream_id_of(slow, first.id)
        assert len(calls_for(slow, upstream, "cancel")) == 1
        wait_status(org.sdk, second.id, ("validating_files", "running"))
        assert len(upstream_creates(slow, second.id)) == 1
        wait_for(lambda: saw_cancel_event(org.sdk, first.id), timeout=15, what="cancel event")
        org.sdk.fine_tuning.jobs.cancel(second.id)


def test_pause_and_resume_go_upstream(slow: Gateway) -> None:
    with tenant(slow) as org:
        job = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(org.sdk))
        wait_status(org.sdk, job.id, ("running",))
        assert org.sdk.fine_tuning.jobs.pause(job.id).status == "paused"
        assert org.sdk.fine_tuning.jobs.retrieve(job.id).status == "paused"
        assert org.sdk.fine_tuning.jobs.resume(job.id).status == "running"
        upstream = upstream_id_of(slow, job.id)
        assert len(calls_for(slow, upstream, "pause")) == 1
        assert len(calls_for(slow, upstream, "resume")) == 1
        org.sdk.fine_tuning.jobs.cancel(job.id)


def test_moves_the_state_machine_refuses_are_409(slow: Gateway) -> None:
    with tenant(slow) as org, slow.client(org.key) as client:
        job = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=upload(org.sdk))
        wait_status(org.sdk, job.id, ("running",))
        resume = client.post(f"/v1/fine_tuning/jobs/{job.id}/resume")
        assert resume.status_code == 409
        assert resume.json()["error"]["code"] == "invalid_job_state"
        org.sdk.fine_tuning.jobs.cancel(job.id)
        for action in ("cancel", "pause", "resume"):
            refused = client.post(f"/v1/fine_tuning/jobs/{job.id}/{action}")
            assert refused.status_code == 409, action
            assert "cancelled" in refused.json()["error"]["message"]
