"""The poll cycle against the sandbox upstream over real HTTP: one list walk covers every watched
job, changed jobs fall due with the listed copy and fairly across orgs, the walk pages only as far
as the oldest watched job, a job runs to its end without one retrieve of its own, and a dataset
hand-off waits for the shared upstream bucket."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from openai import OpenAI
from pydantic import SecretStr

from service.config import Settings
from service.domain.jobs.states import JobState
from service.embedded import EmbeddedRedis
from service.operations.context import Context
from service.operations.jobs.cycle import run_poll_cycle
from service.queue import connect_sync_redis
from service.sandbox import SandboxConfig, SandboxHandle, start_in_thread
from service.store import Store, keys
from service.store.jobs import JobRecord
from service.upstream import Upstream
from tests.api.conftest import UPSTREAM_KEY, Gateway
from tests.api.datasets import chat_jsonl
from tests.api.jobs_helpers import tenant, upload, upstream_id_of, wait_status
from tests.support import wait_for

PAUSE_SECONDS = 6
# Jobs that stay `validating_files` for the whole test.
STILL_SANDBOX = SandboxConfig(api_key=UPSTREAM_KEY, org_name="still-org", validating_seconds=3600)


@dataclass
class RecordingQueue:
    tasks: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def submit(self, task: str, *args: Any, **options: Any) -> str:
        self.tasks.append((task, options))
        return str(options.get("job_id"))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    handle = start_in_thread(STILL_SANDBOX)
    yield handle
    handle.stop()


@dataclass
class Setup:
    run: str
    sandbox: SandboxHandle
    upstream_ids: list[str]  # oldest first

    def settings(self) -> Settings:
        return Settings(
            openai_api_key=SecretStr(UPSTREAM_KEY),
            openai_base_url=self.sandbox.base_url_for(self.run),
            upstream_max_retries=0,
            upstream_rpm=100_000,
        )

    def list_calls(self) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.sandbox.url}/runs/{self.run}/_sandbox/requests",
            params={"path_prefix": "/v1/fine_tuning/jobs"},
            headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
            timeout=10,
        )
        calls = response.json()["data"]
        return [c for c in calls if c["method"] == "GET"]


def upstream_jobs(sandbox: SandboxHandle, count: int) -> Setup:
    run = f"cycle-{secrets.token_hex(4)}"
    with OpenAI(api_key=UPSTREAM_KEY, base_url=sandbox.base_url_for(run)) as client:
        data = chat_jsonl(20, salt=run)
        file_id = client.files.create(file=("t.jsonl", data), purpose="fine-tune").id
        ids = [
            client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id).id
            for _ in range(count)
        ]
    return Setup(run, sandbox, ids)


def watched_record(job_id: str, org_id: str, upstream_id: str, status: str) -> JobRecord:
    return JobRecord(
        id=job_id,
        org_id=org_id,
        created_at=int(time.time()) - 5,
        seq=time.time(),
        request={"model": "gpt-4o-mini", "training_file": "file-x"},
        base_model="gpt-4o-mini",
        seed=1,
        state=JobState.QUEUED if status == "queued" else JobState.VALIDATING_FILES,
        upstream_id=upstream_id,
        upstream_status=status,
    )


def run_cycle(setup: Setup, records: list[JobRecord]) -> tuple[int, dict[str, JobRecord], list]:
    """Store the records, run one cycle; (jobs made due, records after, the due set)."""
    server = EmbeddedRedis().start()

    async def run() -> tuple[int, dict[str, JobRecord], list]:
        settings = setup.settings()
        async with Upstream.from_settings(settings) as upstream:
            ctx = Context(settings, Store(server.url), RecordingQueue(), upstream)
            for record in records:
                await ctx.store.jobs.create(record, None)
            made_due = await run_poll_cycle(ctx)
            after = {r.id: r for r in await ctx.store.jobs.many([r.id for r in records])}
            due = await ctx.store.redis.zrange("tg:jobs:due", 0, -1)
            await ctx.store.aclose()
        return made_due, after, list(due)

    try:
        return asyncio.run(run())
    finally:
        server.stop()


def test_one_page_tells_every_changed_job_and_fair_across_orgs(sandbox: SandboxHandle) -> None:
    setup = upstream_jobs(sandbox, 5)
    ids = setup.upstream_ids
    # Four of org A's and one of org B's were last seen queued; they are validating upstream.
    records = [watched_record(f"ftjob-a{i}", "org-a", ids[i], "queued") for i in range(4)]
    records.append(watched_record("ftjob-b", "org-b", ids[4], "queued"))
    records.append(watched_record("ftjob-gone", "org-b", "ftjob-notlisted", "queued"))

    made_due, after, due = run_cycle(setup, records)

    assert made_due == 6
    for job_id in ["ftjob-a0", "ftjob-a3", "ftjob-b"]:
        assert (after[job_id].listed or {})["status"] == "validating_files"
        assert after[job_id].due_at is not None
    assert after["ftjob-gone"].listed is None  # not listed: its poll retrieves it
    assert after["ftjob-gone"].due_at is not None
    assert due.index("ftjob-b") < due.index("ftjob-a1")  # org B's first before A's second
    assert len(setup.list_calls()) == 1  # one page; no retrieve, no events


def test_unchanged_jobs_cost_nothing_but_the_page(sandbox: SandboxHandle) -> None:
    setup = upstream_jobs(sandbox, 3)
    records = [
        watched_record(f"ftjob-s{i}", "org-a", upstream_id, "validating_files")
        for i, upstream_id in enumerate(setup.upstream_ids)
    ]

    made_due, after, due = run_cycle(setup, records)

    assert made_due == 0
    assert due == []
    assert all(record.listed is None for record in after.values())
    assert all(record.version == 0 for record in after.values())  # not one write
    assert len(setup.list_calls()) == 1


def test_the_walk_pages_back_only_as_far_as_the_oldest_watched_job(
    sandbox: SandboxHandle,
) -> None:
    setup = upstream_jobs(sandbox, 130)
    oldest, newest = setup.upstream_ids[0], setup.upstream_ids[-1]
    records = [
        watched_record("ftjob-old", "org-a", oldest, "queued"),
        watched_record("ftjob-new", "org-a", newest, "queued"),
    ]

    made_due, after, _ = run_cycle(setup, records)

    assert made_due == 2
    assert after["ftjob-old"].listed is not None  # found on the second page, not retrieved
    pages = setup.list_calls()
    assert len(pages) == 2
    assert "after=" not in pages[0]["query"]
    assert f"after={setup.upstream_ids[30]}" in pages[1]["query"]  # page one: 129 .. 30


def test_the_walk_stops_once_every_watched_job_is_seen(sandbox: SandboxHandle) -> None:
    setup = upstream_jobs(sandbox, 130)
    records = [watched_record("ftjob-new", "org-a", setup.upstream_ids[-1], "queued")]

    run_cycle(setup, records)

    assert len(setup.list_calls()) == 1


def test_a_job_runs_to_its_end_without_a_retrieve_of_its_own(gateway: Gateway) -> None:
    with tenant(gateway) as org:
        file_id = upload(org.sdk)
        job = org.sdk.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)
        done = wait_status(org.sdk, job.id)
        assert done.status == "succeeded"
        assert len(org.sdk.fine_tuning.jobs.list_events(job.id, limit=100).data) > 3
        upstream_id = upstream_id_of(gateway, job.id)
    calls = gateway.upstream_requests(f"/v1/fine_tuning/jobs/{upstream_id}")
    retrieves = [c for c in calls if c["path"] == f"/v1/fine_tuning/jobs/{upstream_id}"]
    assert retrieves == []
    assert any(c["path"].endswith("/events") for c in calls)


def test_a_dataset_hand_off_waits_for_the_shared_bucket(gateway: Gateway) -> None:
    redis = connect_sync_redis(gateway.settings.redis_url or "")
    seconds, now_ms = redis.time()
    paused_until = seconds * 1000 + now_ms // 1000 + PAUSE_SECONDS * 1000
    redis.hset(keys.upstream_bucket(), mapping={"paused": paused_until, "level": 0})
    handed_before = len(hand_offs(gateway))
    try:
        with tenant(gateway) as org:
            file_id = upload(org.sdk)
            time.sleep(PAUSE_SECONDS / 2)
            assert len(hand_offs(gateway)) == handed_before  # held while the bucket is paused
            wait_for(
                lambda: org.sdk.files.retrieve(file_id).status == "processed",
                timeout=60,
                what="the hand-off after the pause",
            )
        assert len(hand_offs(gateway)) > handed_before
    finally:
        redis.delete(keys.upstream_bucket())
        redis.close()


def hand_offs(gateway: Gateway) -> list[dict[str, Any]]:
    return [
        e
        for e in gateway.upstream_requests("/v1/")
        if e["method"] == "POST" and e["path"] in ("/v1/files", "/v1/uploads")
    ]
