"""Objects no file record keeps, on local disk: a process that died between writing an object
and recording it, or between the two halves of a DELETE, leaves bytes the hourly reclaim removes
once they are past the grace period; files still recorded keep theirs."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from openai import OpenAI

from service.operations.context import Context
from service.operations.datasets.orphans import (
    ORPHAN_GRACE_SECONDS,
    reclaim_orphans,
    reclaim_when_due,
)
from service.storage import dataset_key
from service.store import Store
from tests.api.conftest import Gateway
from tests.api.datasets import chat_jsonl
from tests.api.test_files import wait_processed

T = TypeVar("T")


def with_context(gateway: Gateway, use: Callable[[Context], Awaitable[T]]) -> T:
    async def run() -> T:
        ctx = Context(settings=gateway.settings, store=Store(gateway.settings.redis_url or ""))
        try:
            return await use(ctx)
        finally:
            await ctx.aclose()

    return asyncio.run(run())


def test_unrecorded_objects_go_once_an_hour_past_the_grace_and_recorded_ones_stay(
    gateway: Gateway,
) -> None:
    org = gateway.create_org(f"orphans-{secrets.token_hex(3)}", policy={"pii": "allow"})
    _, key = gateway.create_key(org, "member")
    root = gateway.settings.data_dir
    with OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as sdk:
        kept_data = chat_jsonl(12, salt=secrets.token_hex(4))
        kept = sdk.files.create(file=("kept.jsonl", kept_data), purpose="fine-tune")
        cut = sdk.files.create(file=("cut.jsonl", chat_jsonl(12, salt="cut")), purpose="fine-tune")
        wait_processed(sdk, kept.id)
        wait_processed(sdk, cut.id)
        never_recorded = f"file-{secrets.token_hex(12)}"
        later_orphan = f"file-{secrets.token_hex(12)}"
        foreign = root / "exports" / "notes.txt"
        hour_ahead = time.time() + ORPHAN_GRACE_SECONDS + 120

        async def crash_and_reclaim(ctx: Context) -> tuple[int, int, int, int]:
            record = await ctx.store.files.get(cut.id)
            assert record is not None
            await ctx.store.files.remove(record)  # a DELETE whose process died here
            async with ctx.storage.writer(dataset_key(org, never_recorded)) as sink:
                await sink.write(b'{"messages": []}\n')  # a process that died before the record
            foreign.parent.mkdir(exist_ok=True)
            foreign.write_bytes(b"not a dataset")
            young = await reclaim_orphans(ctx)  # now: everything is younger than the grace
            first = await reclaim_when_due(ctx, now=hour_ahead)
            async with ctx.storage.writer(dataset_key(org, later_orphan)) as sink:
                await sink.write(b"{}\n")
            same_hour = await reclaim_when_due(ctx, now=hour_ahead)  # claimed already
            next_hour = await reclaim_when_due(ctx, now=hour_ahead + 3600)
            return young, first, same_hour, next_hour

        young, first, same_hour, next_hour = with_context(gateway, crash_and_reclaim)
        assert (young, first, same_hour, next_hour) == (0, 2, 0, 1)
        left = {path.name for path in (root / org).iterdir()}
        assert left == {f"{kept.id}.jsonl"}
        assert foreign.read_bytes() == b"not a dataset"  # not in the layout: not tunegate's
        assert sdk.files.content(kept.id).content == kept_data
