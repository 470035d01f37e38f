"""SIGKILL at the worst moments, several jobs in one bounded scenario, real processes.

One org, two datasets, two jobs; four processes die by SIGKILL along the way:

1. a worker mid-upload of dataset A, after its upload landed upstream (the sandbox's `hang`
   fault holds the worker's request; the test then lands the very same upload itself, as if the
   upstream had answered just before the worker died);
2. the service mid-request, half-way through receiving dataset B (then restarted);
3. a worker mid-create of job 1, after the create landed upstream (replayed the same way);
4. a worker mid-watch of job 2 (its poll of the upstream job is held by a `hang`).

After the restarts both jobs succeed, and the sandbox saw exactly one stored upload per dataset
and one upstream job per tunegate job; the half-received upload left no file behind.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from openai import OpenAI

from service.sandbox import SandboxHandle, start_in_thread
from tests.api.datasets import chat_jsonl
from tests.integration.conftest import UPSTREAM_KEY
from tests.integration.test_datasets import uploads_of
from tests.integration.test_jobs import CREATE, creates_for, sandbox_url, upstream_jobs, wait_end
from tests.reliability.stack import STACK_SANDBOX, Stack, sandbox_counts, stack
from tests.support import wait_for

__all__ = ["stack"]


@pytest.fixture(scope="module")
def stack_sandbox() -> Iterator[SandboxHandle]:
    """Jobs that train for 10 s: the hang set on job 2's polls is in place before it ends,
    however late the test gets to set it."""
    handle = start_in_thread(STACK_SANDBOX.model_copy(update={"step_seconds": 1.0}))
    yield handle
    handle.stop()


pytestmark = pytest.mark.integration
MODEL = "gpt-4o-mini"


def sdk_for(stack: Stack, key: str) -> OpenAI:
    return OpenAI(base_url=f"{stack.url}/v1", api_key=key, max_retries=0, timeout=30)


def add_fault(stack: Stack, **spec: Any) -> None:
    with stack.sandbox_api() as api:
        api.post("/faults", json={"seconds": 300, **spec}).raise_for_status()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def land_upload(stack: Stack, hung: dict[str, Any], data: bytes) -> str:
    """Upload what the dead worker was uploading, under the same name, straight upstream."""
    filename = hung["multipart"]["files"][0]["filename"]
    base_url = stack.sandbox.base_url_for(stack.run)
    with OpenAI(base_url=base_url, api_key=UPSTREAM_KEY, max_retries=0) as upstream:
        return upstream.files.create(file=(filename, data), purpose="fine-tune").id


def land_create(stack: Stack, hung: dict[str, Any]) -> str:
    with stack.sandbox_api() as api:
        landed = api.post(sandbox_url(stack, CREATE), content=orjson.dumps(hung["body"]))
    return str(landed.json()["id"])


class HalfUpload:
    """A multipart upload sent from a thread that stops half-way until released."""

    def __init__(self, stack: Stack, key: str, data: bytes) -> None:
        boundary = "reliability-boundary"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="file"; filename="half.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n'
        ).encode()
        self.parts = [head + data[: len(data) // 2], data[len(data) // 2 :]]
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.release = threading.Event()
        self.outcome: list[object] = []
        self.headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        }
        self.url = f"{stack.url}/v1/files"
        self.thread = threading.Thread(target=self._send, daemon=True)

    def _body(self) -> Iterator[bytes]:
        yield self.parts[0]
        self.release.wait(timeout=60)
        yield self.parts[1]
        yield self.tail

    def _send(self) -> None:
        try:
            response = httpx.post(self.url, content=self._body(), headers=self.headers, timeout=30)
            self.outcome.append(response.status_code)
        except httpx.HTTPError as error:
            self.outcome.append(error)

    def finish(self) -> object:
        self.release.set()
        self.thread.join(timeout=60)
        return self.outcome[0]


def hung_requests(stack: Stack, method: str, path_prefix: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in stack.upstream_requests(path_prefix)
        if entry["method"] == method and entry["fault"] == "hang"
    ]


def test_jobs_end_right_and_nothing_is_done_twice_across_sigkills(stack: Stack) -> None:
    key = stack.org_with_key("member", policy={"pii": "allow"})
    first, second = chat_jsonl(20, salt="first"), chat_jsonl(20, salt="second")
    parts = stack.logs / "data" / "tmp"
    with sdk_for(stack, key) as sdk:
        # 1. a worker dies mid-upload; its upload had landed upstream
        add_fault(stack, kind="hang", method="POST", path_prefix="/v1/files")
        file_a = sdk.files.create(file=("a.jsonl", first), purpose="fine-tune")
        [hung] = wait_for(lambda: uploads_of(stack, sha(first)), timeout=60, what="upload A")
        stack.kill_worker(stack.workers[-1])
        landed_file = land_upload(stack, hung, first)

        # 2. the service dies half-way through receiving dataset B, and comes back
        half = HalfUpload(stack, key, second)
        half.thread.start()
        wait_for(lambda: any(parts.glob("*.part")), timeout=30, what="half an upload received")
        stack.kill_service()
        assert isinstance(half.finish(), httpx.HTTPError)
        stack.start_service()
        file_b = sdk.files.create(file=("b.jsonl", second), purpose="fine-tune")
        stack.start_worker()

        # 3. a worker dies mid-create of job 1; its create had landed upstream
        add_fault(stack, kind="hang", method="POST", path_prefix=CREATE)
        job_1 = sdk.fine_tuning.jobs.create(model=MODEL, training_file=file_a.id)
        [create] = wait_for(lambda: creates_for(stack, job_1.id), timeout=90, what="create 1")
        stack.kill_worker(stack.workers[-1])
        landed_job = land_create(stack, create)

        # 4. a worker dies mid-watch of job 2
        job_2 = sdk.fine_tuning.jobs.create(model=MODEL, training_file=file_b.id)
        stack.start_worker()
        [upstream_2] = wait_for(lambda: upstream_jobs(stack, job_2.id), timeout=90, what="job 2")
        watched = f"{CREATE}/{upstream_2['id']}"
        add_fault(stack, kind="hang", method="GET", path_prefix=watched)
        wait_for(lambda: hung_requests(stack, "GET", watched), timeout=60, what="watch of job 2")
        stack.kill_worker(stack.workers[-1])
        stack.start_worker()

        assert wait_end(sdk, job_1.id) == "succeeded"
        assert wait_end(sdk, job_2.id) == "succeeded"
        for job in (job_1, job_2):
            assert sdk.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
        events = [event.id for event in sdk.fine_tuning.jobs.list_events(job_2.id, limit=100)]
        assert len(events) == len(set(events))
        assert {f.id for f in sdk.files.list()} == {file_a.id, file_b.id}
        assert sdk.files.retrieve(file_a.id).status == "processed"

    # one stored upload per dataset: A's is the one that landed as its worker died
    assert [entry["fault"] for entry in uploads_of(stack, sha(first))] == ["hang", None]
    assert [entry["fault"] for entry in uploads_of(stack, sha(second))] == [None]
    counts = sandbox_counts(stack)
    assert counts["files"]["fine-tune"] == 2
    with stack.sandbox_api() as api:
        upstream_files = api.get(sandbox_url(stack, "/v1/files")).json()["data"]
    assert landed_file in {f["id"] for f in upstream_files}
    # one upstream job per tunegate job: job 1's is the one that landed as its worker died
    assert [entry["fault"] for entry in creates_for(stack, job_1.id)] == ["hang", None]
    assert [found["id"] for found in upstream_jobs(stack, job_1.id)] == [landed_job]
    assert len(creates_for(stack, job_2.id)) == 1
    assert counts["jobs"] == {"succeeded": 2}
