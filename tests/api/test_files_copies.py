"""The org's upstream copies of dataset bytes: one per content however many files share it, none
left behind once every file using it is deleted, and the sweeper's reconciliation of what the
upstream holds with what tunegate keeps. Checked against the sandbox upstream's own file list."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import orjson
import pytest
from openai import OpenAI

from service.operations.datasets import reconcile as upstream_files
from tests.api.conftest import GATEWAY_RUN, UPSTREAM_KEY, Gateway
from tests.api.datasets import chat_jsonl
from tests.support import wait_for
from workers.runtime import build_context

CONCURRENT = 20


@pytest.fixture()
def org(gateway: Gateway) -> str:
    return gateway.create_org(f"copies-{secrets.token_hex(3)}", policy={"pii": "allow"})


@pytest.fixture()
def org_key(gateway: Gateway, org: str) -> str:
    return gateway.create_key(org, "member")[1]


@pytest.fixture()
def upstream(gateway: Gateway) -> Iterator[OpenAI]:
    """The sandbox upstream, as tunegate sees it."""
    base_url = gateway.sandbox.base_url_for(GATEWAY_RUN)
    with OpenAI(base_url=base_url, api_key=UPSTREAM_KEY, max_retries=0) as client:
        yield client


def sdk_for(gateway: Gateway, key: str) -> OpenAI:
    return OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def upstream_names(upstream: OpenAI) -> dict[str, str]:
    """Upstream file id -> file name, for every file the upstream holds."""
    return {f.id: f.filename for f in upstream.files.list(limit=10_000)}


def wait_processed(sdk: OpenAI, file_id: str) -> None:
    wait_for(
        lambda: sdk.files.retrieve(file_id).status == "processed",
        timeout=90,
        what=f"{file_id} processed",
    )


def reconcile(gateway: Gateway) -> dict[str, int]:
    async def run() -> dict[str, int]:
        ctx = await build_context(gateway.settings)
        try:
            return await upstream_files.reconcile(ctx)
        finally:
            ctx.queue.close()
            await ctx.aclose()

    return asyncio.run(run())


def test_concurrent_identical_uploads_make_one_copy_and_deleting_all_leaves_none(
    gateway: Gateway, org_key: str, upstream: OpenAI
) -> None:
    data = chat_jsonl(12, salt=f"twins-{secrets.token_hex(4)}")

    def upload(index: int) -> str:
        with sdk_for(gateway, org_key) as sdk:
            return sdk.files.create(file=(f"t{index}.jsonl", data), purpose="fine-tune").id

    with ThreadPoolExecutor(CONCURRENT) as pool:
        ids = list(pool.map(upload, range(CONCURRENT)))
    with sdk_for(gateway, org_key) as sdk:
        for file_id in ids:
            wait_processed(sdk, file_id)
    sha = hashlib.sha256(data).hexdigest()
    posted = [
        r
        for r in gateway.upstream_requests("/v1/files")
        if r["method"] == "POST" and sha in orjson.dumps(r).decode()
    ]
    assert len(posted) == 1
    names = {f"{file_id}.jsonl" for file_id in ids}
    assert len([n for n in upstream_names(upstream).values() if n in names]) == 1

    def delete(file_id: str) -> bool:
        with sdk_for(gateway, org_key) as sdk:
            return sdk.files.delete(file_id).deleted

    with ThreadPoolExecutor(CONCURRENT) as pool:
        assert all(pool.map(delete, ids))
    wait_for(
        lambda: not any(n in names for n in upstream_names(upstream).values()),
        timeout=60,
        what="the upstream to hold none of the deleted files' copies",
    )


def test_reconciliation_deletes_a_late_twin_and_keeps_what_is_used(
    gateway: Gateway, org_key: str, upstream: OpenAI
) -> None:
    data = chat_jsonl(11, salt=f"late-{secrets.token_hex(4)}")
    with sdk_for(gateway, org_key) as sdk:
        created = sdk.files.create(file=("late.jsonl", data), purpose="fine-tune")
        wait_processed(sdk, created.id)
        kept = [i for i, n in upstream_names(upstream).items() if n == f"{created.id}.jsonl"]
        # the first attempt's upload, landing after the retry made its own
        twin = upstream.files.create(file=(f"{created.id}.jsonl", data), purpose="fine-tune")
        foreign_name = "file-" + secrets.token_hex(12) + ".jsonl"  # another deployment's
        foreign = upstream.files.create(file=(foreign_name, data), purpose="fine-tune")
        reconcile(gateway)
        with pytest.raises(openai.NotFoundError):
            upstream.files.retrieve(twin.id)
        assert upstream.files.retrieve(foreign.id).id == foreign.id
        assert [upstream.files.retrieve(i).id for i in kept] == kept
        assert sdk.files.content(created.id).content == data
    upstream.files.delete(foreign.id)


def test_reconciliation_deletes_a_copy_recorded_for_a_file_deleted_meanwhile(
    gateway: Gateway, org: str, org_key: str, upstream: OpenAI
) -> None:
    """A worker recorded its upload, made it and died before keeping it; the file was deleted
    before any retry."""
    data = chat_jsonl(11, salt=f"lost-{secrets.token_hex(4)}")
    with sdk_for(gateway, org_key) as sdk:
        created = sdk.files.create(file=("lost.jsonl", data), purpose="fine-tune")
        wait_processed(sdk, created.id)
        lost = upstream.files.create(file=(f"{created.id}.jsonl", data), purpose="fine-tune")

        async def record_upload() -> None:
            ctx = await build_context(gateway.settings)
            try:
                await ctx.store.copies.begin_upload(created.id, org)
            finally:
                ctx.queue.close()
                await ctx.aclose()

        asyncio.run(record_upload())
        sdk.files.delete(created.id)
    reconcile(gateway)
    with pytest.raises(openai.NotFoundError):
        upstream.files.retrieve(lost.id)
    wait_for(
        lambda: not any(n == f"{created.id}.jsonl" for n in upstream_names(upstream).values()),
        timeout=60,
        what="the deleted file's kept copy to go too",
    )
