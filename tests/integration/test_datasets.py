"""Dataset hand-off with real worker processes: a worker killed mid-upload still leaves exactly
one upstream copy, found and finished by the next worker."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from openai import OpenAI

from tests.api.datasets import chat_jsonl
from tests.integration.conftest import Deployment
from tests.support import wait_for

pytestmark = pytest.mark.integration


def uploads_of(deployment: Deployment, sha: str) -> list[dict[str, object]]:
    return [
        r
        for r in deployment.upstream_requests("/v1/files")
        if r["method"] == "POST" and sha in orjson.dumps(r).decode()
    ]


def test_worker_killed_mid_upload_leaves_one_upstream_copy(deployment: Deployment) -> None:
    key = deployment.org_with_key("member", policy={"pii": "allow"})
    with deployment.sandbox_api() as api:
        api.post(
            "/faults",
            json={
                "kind": "hang",
                "method": "POST",
                "path_prefix": "/v1/files",
                "count": 1,
                "seconds": 120,
            },
        ).raise_for_status()
    data = chat_jsonl(20, salt="kill")
    sha = hashlib.sha256(data).hexdigest()
    with OpenAI(base_url=f"{deployment.url}/v1", api_key=key, max_retries=0) as sdk:
        created = sdk.files.create(file=("train.jsonl", data), purpose="fine-tune")
        wait_for(lambda: uploads_of(deployment, sha), timeout=30, what="upload in flight")
        deployment.kill_worker(deployment.workers[0])
        assert sdk.files.retrieve(created.id).status == "uploaded"
        deployment.start_worker()
        processed = wait_for(
            lambda: (f := sdk.files.retrieve(created.id)).status == "processed" and f,
            timeout=60,
            what="processed after restart",
        )
    assert processed.status == "processed"
    attempts = uploads_of(deployment, sha)
    assert len(attempts) == 2
    assert attempts[0]["fault"] == "hang"
    with deployment.sandbox_api() as api:
        counts = api.get("/counts").json()
    assert counts["files"].get("fine-tune") == 1


def test_a_rate_limited_upload_is_tried_again_not_failed(deployment: Deployment) -> None:
    """A 429 says "not now": the hand-off is retried by the queue and the file is processed."""
    key = deployment.org_with_key("member", policy={"pii": "allow"})
    with deployment.sandbox_api() as api:
        fault = {"kind": "429", "method": "POST", "path_prefix": "/v1/files", "count": 1}
        api.post("/faults", json=fault).raise_for_status()
    data = chat_jsonl(20, salt="rate-limited")
    sha = hashlib.sha256(data).hexdigest()
    with OpenAI(base_url=f"{deployment.url}/v1", api_key=key, max_retries=0) as sdk:
        created = sdk.files.create(file=("train.jsonl", data), purpose="fine-tune")
        processed = wait_for(
            lambda: (f := sdk.files.retrieve(created.id)).status != "uploaded" and f,
            timeout=60,
            what="the hand-off to end",
        )
    assert processed.status == "processed"
    assert [attempt["status"] for attempt in uploads_of(deployment, sha)] == [429, 200]
