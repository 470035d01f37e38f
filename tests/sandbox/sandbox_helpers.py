"""Builders and waits shared by the sandbox tests."""

from __future__ import annotations

import time
from typing import Any

import httpx2
import orjson
from openai import OpenAI
from openai.types.fine_tuning import FineTuningJob

from service.sandbox import SandboxConfig

API_KEY = "sk-sandbox-test-key-0123456789"
FAST = SandboxConfig(
    api_key=API_KEY,
    org_name="test-org",
    validating_seconds=0.5,  # room for a pause or cancel sent right after the create
    queued_seconds=0.05,
    step_seconds=0.005,
    total_steps=12,
)


def chat_lines(count: int, *, prefix: str = "question") -> bytes:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "You answer briefly."},
                {"role": "user", "content": f"{prefix} {i}?"},
                {"role": "assistant", "content": f"answer {i}."},
            ]
        }
        for i in range(count)
    ]
    return b"\n".join(orjson.dumps(row) for row in rows) + b"\n"


def preference_lines(count: int) -> bytes:
    rows = [
        {
            "input": {"messages": [{"role": "user", "content": f"pick {i}"}]},
            "preferred_output": [{"role": "assistant", "content": "good"}],
            "non_preferred_output": [{"role": "assistant", "content": "bad"}],
        }
        for i in range(count)
    ]
    return b"\n".join(orjson.dumps(row) for row in rows)


def upload(client: OpenAI, content: bytes, name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, content), purpose="fine-tune").id


def wait_for(
    client: OpenAI, job_id: str, statuses: set[str], timeout: float = 10.0
) -> FineTuningJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} stuck in {job.status}")
        time.sleep(0.02)


def add_fault(inspect: httpx2.Client, **spec: Any) -> dict[str, Any]:
    response = inspect.post("/faults", json=spec)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result
