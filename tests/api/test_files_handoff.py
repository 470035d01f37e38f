"""Handing a dataset to the upstream through an outage: a passing failure delays the file and
says why, however many times it repeats; only a refusal fails it.

The gateway's own workers retry on the backoff schedule (2 s, 4 s, 8 s, ...); the test hands the
file over itself as well, so that seven failures in a row (more than any fixed cap would allow)
take seconds, not minutes. The per-file lock keeps the two from racing.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from service.operations.datasets import uploads
from service.sandbox import SandboxHandle
from tests.api.conftest import UPSTREAM_KEY, Gateway, gateway_settings, running_gateway
from tests.api.datasets import chat_jsonl
from tests.support import wait_for
from workers.runtime import build_context

OUTAGE = 7  # upload attempts the upstream answers with 503


class Outage:
    def __init__(self, gateway: Gateway, run: str) -> None:
        self.gateway = gateway
        self.inspect = httpx.Client(
            base_url=f"{gateway.sandbox.url}/runs/{run}/_sandbox",
            headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
            timeout=30,
        )

    def uploads_of(self, data: bytes) -> list[dict[str, Any]]:
        sha = hashlib.sha256(data).hexdigest()
        found = self.inspect.get("/requests", params={"path_prefix": "/v1/files"}).json()["data"]
        return [r for r in found if r["method"] == "POST" and sha in str(r["multipart"])]

    def sdk(self) -> OpenAI:
        org = self.gateway.create_org(f"outage-{secrets.token_hex(3)}", {"pii": "allow"})
        key = self.gateway.create_key(org, "member")[1]
        return OpenAI(base_url=f"{self.gateway.url}/v1", api_key=key, max_retries=0)


@pytest.fixture()
def outage(gateway: Gateway, tmp_path: Path) -> Iterator[Outage]:
    sandbox: SandboxHandle = gateway.sandbox
    run = f"outage-{secrets.token_hex(3)}"
    settings = gateway_settings(tmp_path, sandbox.base_url_for(run))
    with running_gateway(settings, sandbox) as own:
        outage = Outage(own, run)
        try:
            yield outage
        finally:
            outage.inspect.close()


async def hand_over(gateway: Gateway, file_id: str) -> str:
    """One hand-off attempt, as a worker makes it."""
    ctx = await build_context(gateway.settings)
    try:
        return await uploads.upload_to_upstream(ctx, file_id)
    finally:
        ctx.queue.close()
        await ctx.aclose()


def test_an_upstream_outage_delays_the_file_and_never_fails_it(outage: Outage) -> None:
    fault = {"kind": "503", "method": "POST", "path_prefix": "/v1/files", "count": OUTAGE}
    outage.inspect.post("/faults", json=fault).raise_for_status()
    data = chat_jsonl(15, salt=f"outage-{secrets.token_hex(3)}")
    with outage.sdk() as sdk:
        created = sdk.files.create(file=("train.jsonl", data), purpose="fine-tune")
        waiting = wait_for(
            lambda: (f := sdk.files.retrieve(created.id)).status_details and f,
            timeout=30,
            what="the first failure to be shown",
        )
        assert waiting.status == "uploaded"
        assert "Waiting for the upstream" in waiting.status_details
        statuses = []
        for _ in range(4 * OUTAGE):
            statuses.append(sdk.files.retrieve(created.id).status)
            if statuses[-1] != "uploaded":
                break
            asyncio.run(hand_over(outage.gateway, created.id))
        final = sdk.files.retrieve(created.id)
    assert "error" not in statuses
    assert final.status == "processed" and final.status_details is None
    answered = [attempt["status"] for attempt in outage.uploads_of(data)]
    assert answered == [503] * OUTAGE + [200]
