"""Fine-tuning jobs with real worker processes and a real Redis: the upstream job is created
exactly once even when a worker dies mid-create, and an upstream answering 429 and 500 for a
while delays a job without failing it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai import OpenAI

from tests.api.datasets import chat_jsonl
from tests.integration.conftest import Deployment
from tests.support import wait_for

pytestmark = pytest.mark.integration
CREATE = "/v1/fine_tuning/jobs"


def sdk_for(deployment: Deployment, key: str) -> OpenAI:
    return OpenAI(base_url=f"{deployment.url}/v1", api_key=key, max_retries=0)


def processed_file(sdk: OpenAI, salt: str) -> str:
    created = sdk.files.create(file=("train.jsonl", chat_jsonl(20, salt=salt)), purpose="fine-tune")
    wait_for(
        lambda: sdk.files.retrieve(created.id).status == "processed",
        timeout=120,
        what="file processed",
    )
    return created.id


def creates_for(deployment: Deployment, job_id: str) -> list[dict[str, Any]]:
    """Create calls that reached the sandbox carrying this tunegate job's id."""
    return [
        entry
        for entry in deployment.upstream_requests(CREATE)
        if entry["method"] == "POST"
        and entry["path"] == CREATE
        and isinstance(entry.get("body"), dict)
        and (entry["body"].get("metadata") or {}).get("tunegate_job_id") == job_id
    ]


def sandbox_url(deployment: Deployment, path: str) -> str:
    return f"{deployment.sandbox.url}/runs/{deployment.run}{path}"


def upstream_jobs(deployment: Deployment, job_id: str) -> list[dict[str, Any]]:
    with deployment.sandbox_api() as api:
        response = api.get(
            sandbox_url(deployment, CREATE), params={"metadata[tunegate_job_id]": job_id}
        )
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def upstream_statuses(deployment: Deployment, job_id: str) -> dict[str, str]:
    return {found["id"]: found["status"] for found in upstream_jobs(deployment, job_id)}


def hang_creates(deployment: Deployment) -> None:
    with deployment.sandbox_api() as api:
        fault = {"kind": "hang", "method": "POST", "path_prefix": CREATE, "seconds": 300}
        api.post("/faults", json=fault).raise_for_status()


def held_create(deployment: Deployment, sdk: OpenAI, salt: str) -> tuple[str, dict[str, Any]]:
    """A job whose first upstream create the sandbox holds (`hang`), and that held request."""
    training = processed_file(sdk, salt)
    hang_creates(deployment)
    job = sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
    [hung] = wait_for(lambda: creates_for(deployment, job.id), timeout=120, what="create")
    assert hung["fault"] == "hang"
    return job.id, hung


def wait_end(sdk: OpenAI, job_id: str, timeout: float = 180) -> str:
    return str(
        wait_for(
            lambda: (
                (job := sdk.fine_tuning.jobs.retrieve(job_id)).status
                in ("succeeded", "failed", "cancelled")
                and job.status
            ),
            timeout=timeout,
            interval=0.3,
            what=f"{job_id} to end",
        )
    )


def test_a_create_that_landed_before_the_worker_died_is_adopted(deployment: Deployment) -> None:
    """The sandbox's `hang` fault holds a request *before* handling it, and drops it when the
    client goes, so a worker killed during the hang never creates the job. To stand for a
    create that did land upstream just before the worker died, the test then replays the very
    request the worker sent (same body, so same `tunegate_job_id` metadata) straight to the
    sandbox. The next worker must find that job through the metadata and adopt it: one upstream
    job, and no create of its own."""
    key = deployment.org_with_key("member", policy={"pii": "allow"})
    with sdk_for(deployment, key) as sdk:
        job_id, hung = held_create(deployment, sdk, "adopt")
        deployment.kill_worker(deployment.workers[0])
        with deployment.sandbox_api() as api:
            replay = orjson.dumps(hung["body"])
            landed = api.post(sandbox_url(deployment, CREATE), content=replay).json()
        deployment.start_worker()
        assert wait_end(sdk, job_id) == "succeeded"
    assert [entry["fault"] for entry in creates_for(deployment, job_id)] == ["hang", None]
    assert [found["id"] for found in upstream_jobs(deployment, job_id)] == [landed["id"]]
    lookups = [
        entry
        for entry in deployment.upstream_requests(CREATE)
        if entry["method"] == "GET" and "tunegate_job_id" in entry["query"]
    ]
    assert lookups, "the retry looked for its job upstream before creating"


def test_a_create_that_never_landed_is_made_once(deployment: Deployment) -> None:
    """A worker killed during the hang: the create never reached the upstream. The next
    worker looks for the job by its metadata, finds none, and creates it exactly once."""
    key = deployment.org_with_key("member", policy={"pii": "allow"})
    with sdk_for(deployment, key) as sdk:
        job_id, _ = held_create(deployment, sdk, "once")
        deployment.kill_worker(deployment.workers[0])
        deployment.start_worker()
        assert wait_end(sdk, job_id) == "succeeded"
    assert [entry["fault"] for entry in creates_for(deployment, job_id)] == ["hang", None]
    assert len(upstream_jobs(deployment, job_id)) == 1


def test_a_create_that_lands_after_the_retry_made_one_is_cancelled(deployment: Deployment) -> None:
    """The worst order: the first create is held upstream, the next worker looks, finds
    nothing and creates, and only then does the upstream carry out the first create. As above,
    the test replays the first request itself to stand for that late landing, and pauses the
    twin so that it cannot end on its own. A job that took two attempts looks again as it
    polls: the twin is cancelled and the job the gateway adopted runs to the end."""
    key = deployment.org_with_key("member", policy={"pii": "allow"})
    with sdk_for(deployment, key) as sdk:
        job_id, hung = held_create(deployment, sdk, "late-twin")
        deployment.kill_worker(deployment.workers[0])
        with deployment.sandbox_api() as api:
            # the adopted job's first read is held, so the twin lands while the job is watched
            held = {"kind": "hang", "method": "GET", "path_prefix": f"{CREATE}/", "seconds": 10}
            api.post("/faults", json=held).raise_for_status()
        deployment.start_worker()
        wait_for(lambda: len(creates_for(deployment, job_id)) == 2, timeout=120, what="retry")
        with deployment.sandbox_api() as api:
            twin = api.post(sandbox_url(deployment, CREATE), content=orjson.dumps(hung["body"]))
            twin_id = twin.json()["id"]
            api.post(sandbox_url(deployment, f"{CREATE}/{twin_id}/pause")).raise_for_status()
        assert wait_end(sdk, job_id) == "succeeded"
        wait_for(
            lambda: upstream_statuses(deployment, job_id).get(twin_id) == "cancelled",
            timeout=60,
            what="the twin cancelled",
        )
    statuses = upstream_statuses(deployment, job_id)
    assert len(statuses) == 2 and statuses.pop(twin_id) == "cancelled"
    assert list(statuses.values()) == ["succeeded"]


def test_429s_and_500s_for_a_while_delay_the_job_but_do_not_fail_it(
    deployment: Deployment,
) -> None:
    key = deployment.org_with_key("member", policy={"pii": "allow"})
    with sdk_for(deployment, key) as sdk:
        training = processed_file(sdk, "faults")
        with deployment.sandbox_api() as api:
            for fault in (
                {"kind": "429", "method": "POST", "path_prefix": CREATE, "count": 4},
                {"kind": "500", "method": "GET", "path_prefix": f"{CREATE}/", "count": 6},
            ):
                api.post("/faults", json=fault).raise_for_status()
        job = sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=training)
        assert wait_end(sdk, job.id) == "succeeded"
        assert sdk.fine_tuning.jobs.retrieve(job.id).fine_tuned_model

    # the list walk may see the end first: its last reads (and the faults left) follow
    def faults() -> list[str]:
        return [entry["fault"] for entry in deployment.upstream_requests(CREATE)]

    wait_for(lambda: faults().count("500") == 6, timeout=120, what="every 500 met")
    assert faults().count("429") == 4
    assert len(upstream_jobs(deployment, job.id)) == 1
