"""An end seen by the poll cycle's list walk, against the sandbox upstream over real HTTP: the
walk records it at once (its model routable first), and a caller who asks for the events or
checkpoints before the finishing `sync` step ran gets them complete, read then and there."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI
from pydantic import SecretStr

from service.config import Settings
from service.domain.jobs.states import JobState
from service.domain.tenancy.access import Principal
from service.embedded import EmbeddedRedis
from service.operations.context import Context
from service.operations.jobs import views
from service.operations.jobs.cycle import run_poll_cycle
from service.sandbox import SandboxConfig, SandboxHandle, start_in_thread
from service.store import Store
from service.store.jobs import JobRecord
from service.upstream import Upstream
from tests.api.conftest import UPSTREAM_KEY
from tests.api.datasets import chat_jsonl
from tests.api.test_jobs_cycle import RecordingQueue
from tests.support import wait_for

FAST = SandboxConfig(
    api_key=UPSTREAM_KEY,
    org_name="fast-org",
    validating_seconds=0,
    queued_seconds=0,
    step_seconds=0.01,
    total_steps=4,
)
OWNER = Principal("org-a", "key-a", "member")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_in_thread(FAST)
    yield handle
    handle.stop()


def succeeded_upstream(sandbox: SandboxHandle, run: str) -> str:
    with OpenAI(api_key=UPSTREAM_KEY, base_url=sandbox.base_url_for(run)) as client:
        data = chat_jsonl(20, salt=run)
        file_id = client.files.create(file=("t.jsonl", data), purpose="fine-tune").id
        job_id = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id).id
        wait_for(
            lambda: client.fine_tuning.jobs.retrieve(job_id).status == "succeeded",
            timeout=60,
            what="the upstream job to succeed",
        )
    return job_id


def running_record(upstream_id: str) -> JobRecord:
    return JobRecord(
        id="ftjob-ours-1",
        org_id=OWNER.org_id or "",
        created_at=int(time.time()) - 5,
        seq=time.time(),
        request={"model": "gpt-4o-mini", "training_file": "file-x"},
        base_model="gpt-4o-mini",
        seed=1,
        state=JobState.RUNNING,
        upstream_id=upstream_id,
        upstream_status="running",
    )


def fine_tuning_gets(sandbox: SandboxHandle, run: str) -> list[str]:
    response = httpx.get(
        f"{sandbox.url}/runs/{run}/_sandbox/requests",
        params={"path_prefix": "/v1/fine_tuning/jobs"},
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
        timeout=10,
    )
    return [call["path"] for call in response.json()["data"] if call["method"] == "GET"]


def test_the_walk_records_an_end_and_a_caller_finds_its_checkpoints(
    sandbox: SandboxHandle,
) -> None:
    run = f"end-{secrets.token_hex(4)}"
    upstream_id = succeeded_upstream(sandbox, run)
    before = len(fine_tuning_gets(sandbox, run))
    server = EmbeddedRedis().start()
    settings = Settings(
        openai_api_key=SecretStr(UPSTREAM_KEY),
        openai_base_url=sandbox.base_url_for(run),
        upstream_max_retries=0,
        upstream_rpm=100_000,
    )

    async def scenario() -> dict[str, Any]:
        async with Upstream.from_settings(settings) as upstream:
            ctx = Context(settings, Store(server.url), RecordingQueue(), upstream)
            record = running_record(upstream_id)
            await ctx.store.jobs.create(record, None)
            await run_poll_cycle(ctx)
            walked = await ctx.store.jobs.get(record.id)
            assert walked is not None
            model = await ctx.store.models.get_model(
                OWNER.org_id or "", walked.fine_tuned_model or ""
            )
            stored = await ctx.store.jobs.checkpoints(record.id)
            shown, _ = await views.list_checkpoints(ctx, OWNER, record.id, after=None, limit=10)
            events, _ = await views.list_events(ctx, OWNER, record.id, after=None, limit=100)
            synced = await ctx.store.jobs.get(record.id)
            await ctx.store.aclose()
        return {
            "walked": walked,
            "model": model,
            "stored": stored,
            "shown": shown,
            "events": events,
            "synced": synced,
        }

    try:
        found = asyncio.run(scenario())
    finally:
        server.stop()
    walked, synced = found["walked"], found["synced"]
    assert walked.state == JobState.SUCCEEDED  # one walk after the upstream
    assert walked.fine_tuned_model
    assert found["model"] is not None  # routable before anyone saw `succeeded`
    assert walked.pending[:2] == ["promote", "sync"]
    assert found["stored"] == []  # nothing read yet but the list ...
    assert found["shown"]  # ... and the caller who asks gets the checkpoints all the same
    assert all(c["fine_tuning_job_id"] == "ftjob-ours-1" for c in found["shown"])
    assert "The job has successfully completed" in found["events"][0]["message"]
    assert "sync" not in synced.pending  # done once: the runner will not read them again
    calls = fine_tuning_gets(sandbox, run)[before:]
    assert not [path for path in calls if path.endswith(upstream_id)]  # no retrieve of its own
    assert sum(path.endswith("/checkpoints") for path in calls) == 1
