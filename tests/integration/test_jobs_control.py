"""Cancelling with real worker processes: a job still waiting at the gateway for a slot is
cancelled without the upstream ever hearing of it; a running one is cancelled upstream, and its
slot goes to the next job in line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.sandbox import SandboxConfig, SandboxHandle, start_in_thread
from tests.api.jobs_helpers import cancel
from tests.integration.conftest import UPSTREAM_KEY, Deployment
from tests.integration.test_jobs import creates_for, processed_file, sdk_for, wait_end
from tests.support import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    """Jobs that run for about a minute upstream, so they can be caught running."""
    config = SandboxConfig(
        api_key=UPSTREAM_KEY,
        org_name="it-slow",
        validating_seconds=0.1,
        queued_seconds=0.1,
        step_seconds=1.5,
        total_steps=40,
    )
    handle = start_in_thread(config)
    yield handle
    handle.stop()


def test_cancel_while_waiting_at_the_gateway_and_while_running(deployment: Deployment) -> None:
    key = deployment.org_with_key("member", policy={"pii": "allow", "max_concurrent_jobs": 1})
    with sdk_for(deployment, key) as sdk:
        training = processed_file(sdk, "control")
        first, second, third = (
            sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
            for _ in range(3)
        )
        wait_for(
            lambda: sdk.fine_tuning.jobs.retrieve(first.id).status == "running",
            timeout=120,
            what="the first job running",
        )
        assert sdk.fine_tuning.jobs.cancel(second.id).status == "cancelled"
        assert sdk.fine_tuning.jobs.cancel(first.id).status == "cancelled"
        wait_for(lambda: creates_for(deployment, third.id), timeout=120, what="the third started")
        assert cancel(sdk, third.id).status == "cancelled"
        for job in (first, second, third):
            assert wait_end(sdk, job.id) == "cancelled"
    assert creates_for(deployment, second.id) == []
    cancels = [
        entry
        for entry in deployment.upstream_requests("/v1/fine_tuning/jobs/")
        if entry["method"] == "POST" and entry["path"].endswith("/cancel")
    ]
    assert len(cancels) == 2
    with deployment.sandbox_api() as api:
        assert api.get("/counts").json()["jobs"] == {"cancelled": 2}
