"""Helpers for the fine-tuning job tests: an org with a processed dataset, waiting on job
states, and what the sandbox upstream received for a job."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import orjson
from openai import OpenAI
from openai.types.fine_tuning import FineTuningJob

from service.sandbox import SandboxConfig
from tests.api.conftest import UPSTREAM_KEY, Gateway
from tests.api.datasets import chat_jsonl
from tests.support import wait_for

TERMINAL = ("succeeded", "failed", "cancelled")
# Jobs that run long enough to be seen running, paused and cancelled.
SLOW_SANDBOX = SandboxConfig(
    api_key=UPSTREAM_KEY,
    org_name="slow-org",
    validating_seconds=0.1,
    queued_seconds=0.1,
    step_seconds=1.0,
    total_steps=40,
)


@dataclass
class Tenant:
    org_id: str
    key: str
    sdk: OpenAI


@contextmanager
def tenant(
    gateway: Gateway, policy: dict[str, Any] | None = None, role: str = "member"
) -> Iterator[Tenant]:
    org = gateway.create_org(
        f"jobs-{secrets.token_hex(3)}", policy={"pii": "allow", **(policy or {})}
    )
    _, key = gateway.create_key(org, role)
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as sdk:
        yield Tenant(org, key, sdk)


def upload(sdk: OpenAI, examples: int = 20, name: str = "train.jsonl") -> str:
    data = chat_jsonl(examples, salt=secrets.token_hex(4))
    return sdk.files.create(file=(name, data), purpose="fine-tune").id


def wait_status(
    sdk: OpenAI, job_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 60
) -> FineTuningJob:
    found: FineTuningJob = wait_for(
        lambda: (job := sdk.fine_tuning.jobs.retrieve(job_id)).status in statuses and job,
        timeout=timeout,
        interval=0.2,
        what=f"{job_id} to be {'/'.join(statuses)}",
    )
    return found


def upstream_creates(gateway: Gateway, job_id: str) -> list[dict[str, Any]]:
    """The create calls the upstream received for this tunegate job (by its metadata)."""
    creates = [
        entry
        for entry in gateway.upstream_requests("/v1/fine_tuning/jobs")
        if entry["method"] == "POST" and entry["path"] == "/v1/fine_tuning/jobs"
    ]
    return [entry for entry in creates if _tunegate_id(entry) == job_id]


def _tunegate_id(entry: dict[str, Any]) -> str | None:
    body = entry.get("body")
    if not isinstance(body, dict):
        return None
    return (body.get("metadata") or {}).get("tunegate_job_id")


def upstream_id_of(gateway: Gateway, job_id: str) -> str:
    """The upstream job's id, from the sandbox's list filtered on our metadata."""
    for entry in gateway.upstream_requests("/v1/fine_tuning/jobs"):
        if entry["method"] == "POST" and _tunegate_id(entry) == job_id and entry["status"] == 200:
            break
    else:
        raise AssertionError(f"no upstream job for {job_id}")
    response = httpx.get(
        f"{gateway.settings.openai_base_url}/fine_tuning/jobs",
        params={"metadata[tunegate_job_id]": job_id},
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
        timeout=10,
    )
    return str(response.json()["data"][0]["id"])


def calls_for(gateway: Gateway, upstream_id: str, action: str) -> list[dict[str, Any]]:
    path = f"/v1/fine_tuning/jobs/{upstream_id}/{action}"
    return [e for e in gateway.upstream_requests(path) if e["method"] == "POST"]


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def cancel(sdk: OpenAI, job_id: str, timeout: float = 60) -> FineTuningJob:
    """Cancel as a client should: a job in the middle of being handed to the upstream answers
    409 ("try cancelling again in a few seconds"), so try again until it takes."""

    def attempt() -> FineTuningJob | None:
        try:
            return sdk.fine_tuning.jobs.cancel(job_id)
        except openai.ConflictError as error:
            if "being submitted" not in str(error):
                raise
            return None

    found: FineTuningJob = wait_for(attempt, timeout=timeout, interval=0.2, what="cancel")
    return found
