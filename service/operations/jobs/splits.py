"""`validation_split`: the worker carves a validation file out of the training file.

The caller's stored training file is read line by line through `splits.split_lines` (the seed
fixes which lines go where, so the split is reproducible) into two new uploads of the org,
validated like any upload (`files.DatasetUpload`), recorded as tunegate files and handed to the
upstream like any other (`files.save_upload`). The two files are named before they are written;
a worker that dies half-way leaves files the retry deletes before splitting again.

A job splits for itself, except a sweep's trial: the sweep's file is split once, with the
sweep's seed, by the first trial to need it (under a lock, the others waiting meanwhile), and
every trial takes those two files. Once made they are never discarded by a split: like any split
file they stay the org's, each trial's start and end counting as a use for dataset retention.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio

from service.domain.datasets.splits import MIN_VALIDATION, split_lines
from service.domain.datasets.validate import DatasetReport, DatasetValidator
from service.domain.sweeps.trials import sweep_of
from service.errors import InvalidRequest
from service.operations.context import Context
from service.operations.datasets import files, uploads
from service.operations.jobs.lock import held_lock
from service.operations.jobs.records import fail_at_gateway
from service.operations.tenancy.orgs import get_org
from service.store.datasets.files import FileRecord
from service.store.jobs import JobRecord
from service.store.sweeps import SweepRecord

Made = list[tuple[FileRecord, DatasetReport]]
Error = dict[str, object]
Name = Callable[[list[str]], Awaitable[None]]


async def ensure_split(ctx: Context, record: JobRecord) -> JobRecord:
    """The job with both parts of its split stored (or failed, when the split cannot be); a
    sweep's trial without them yet is left as it is while another worker splits."""
    sweep = await _sweep(ctx, record)
    if sweep is not None and record.split_files in ([], sweep.split_files):
        return await _take_sweep_split(ctx, record, sweep)
    if record.split_files and len(await ctx.store.files.many(record.split_files)) == 2:
        return record
    await _discard(ctx, record.split_files)
    named = [record]

    async def name(file_ids: list[str]) -> None:
        named[0] = await _name_parts(ctx, record, file_ids)

    error = await _split(ctx, record.org_id, record.request, record.seed, name)
    return named[0] if error is None else await fail_at_gateway(ctx, named[0], error)


async def _split(
    ctx: Context, org_id: str, request: dict[str, Any], seed: int, name: Name
) -> Error | None:
    """Carve `request`'s training file into two new files, named by `name` before they are
    written; the error when it cannot be."""
    source = await ctx.store.files.get(request["training_file"])
    if source is None or source.bytes_deleted_at is not None:
        return _error("The training file was deleted.")
    org = await get_org(ctx.store, org_id)
    stem = source.filename.removesuffix(".jsonl")
    parts = [
        await anyio.to_thread.run_sync(files.DatasetUpload, ctx, org, f"{stem}.{part}.jsonl")
        for part in ("train", "validation")
    ]
    await name([part.file_id for part in parts])
    try:
        fraction = float(request["validation_split"])
        made = await _carve(ctx, source, parts, fraction, seed)
    except InvalidRequest as error:
        return _error(error.message)
    for stored, report in made:
        await files.save_upload(ctx, stored, report)
    return None


async def _name_parts(ctx: Context, record: JobRecord, file_ids: list[str]) -> JobRecord:
    def name(current: JobRecord) -> JobRecord:
        current.split_files = file_ids
        return current

    updated = await ctx.store.jobs.update(record.id, name)
    assert updated is not None
    return updated


# A sweep's trials


async def _sweep(ctx: Context, record: JobRecord) -> SweepRecord | None:
    """The sweep whose trial this job is, if any: one of the org that splits the same file with
    the same fraction and seed (so its split is exactly the one the job would carve)."""
    sweep_id = sweep_of(record.request.get("metadata"))
    sweep = await ctx.store.sweeps.get(sweep_id) if sweep_id else None
    if sweep is None or sweep.org_id != record.org_id or sweep.seed != record.seed:
        return None
    wanted = ("training_file", "validation_split")
    same = all(sweep.request.get(field) == record.request.get(field) for field in wanted)
    return sweep if same else None


async def _take_sweep_split(ctx: Context, record: JobRecord, sweep: SweepRecord) -> JobRecord:
    if record.split_files:  # taken already: a part deleted since is the job runner's to report
        return record
    made = sweep.split_files if sweep.split_made else await _make_sweep_split(ctx, sweep.id)
    if made is None:
        return record
    if isinstance(made, dict):
        return await fail_at_gateway(ctx, record, made)
    await _mark_used(ctx, made)
    return await _name_parts(ctx, record, made)


async def _make_sweep_split(ctx: Context, sweep_id: str) -> list[str] | Error | None:
    """The sweep's two split files, made now unless they were meanwhile; the error that keeps
    it from having them; or None while another worker makes them."""
    async with held_lock(ctx, f"sweep-split:{sweep_id}") as held:
        sweep = await ctx.store.sweeps.get(sweep_id) if held else None
        if sweep is None:
            return None
        if sweep.split_error is not None or sweep.split_made:
            return sweep.split_error or sweep.split_files
        await _discard(ctx, sweep.split_files)  # left by a worker that died half-way

        async def name(file_ids: list[str]) -> None:
            await _change_sweep(ctx, sweep_id, split_files=file_ids)

        error = await _split(ctx, sweep.org_id, sweep.request, sweep.seed, name)
        if error is not None:
            await _change_sweep(ctx, sweep_id, split_error=error)
            return error
        done = await _change_sweep(ctx, sweep_id, split_made=True)
        return done.split_files


async def _change_sweep(ctx: Context, sweep_id: str, **fields: object) -> SweepRecord:
    def change(current: SweepRecord) -> SweepRecord:
        return current.model_copy(update=fields)

    updated = await ctx.store.sweeps.update(sweep_id, change)
    assert updated is not None
    return updated


async def _mark_used(ctx: Context, file_ids: list[str]) -> None:
    """A trial starts on the files: dataset retention counts from now, as it would from a
    split made for the trial alone."""
    now = int(time.time())

    def used(file: FileRecord) -> FileRecord:
        file.last_used_at = now
        return file

    for file_id in file_ids:
        await ctx.store.files.update(file_id, used)


# Carving


async def _carve(
    ctx: Context,
    source: FileRecord,
    parts: list[files.DatasetUpload],
    fraction: float,
    seed: int,
) -> Made:
    """Split the stored source into both parts as it streams, validate them, and store both
    (or neither)."""
    validation = parts[1]
    options = validation.validator.options.model_copy(update={"min_examples": MIN_VALIDATION})
    validation.validator = DatasetValidator(options)
    async with contextlib.AsyncExitStack() as stack:
        for part in parts:
            await stack.enter_async_context(files.storing(part))
        chunks = ctx.storage.read(uploads.stored_key(source.org_id, source.id))
        sinks = [_PartSink(part) for part in parts]
        await anyio.to_thread.run_sync(_split_stream, chunks, fraction, seed, sinks)
        reports = [await part.finish() for part in parts]
        pairs = zip(parts, reports, strict=True)
        records = [part.check(report, files.FINE_TUNE) for part, report in pairs]
    return list(zip(records, reports, strict=True))


class _PartSink:
    """`split_lines`' sink, in the carving thread: validates each line there and hands the
    validated bytes to the part's object about `FLUSH_BYTES` at a time."""

    FLUSH_BYTES = 1 << 20

    def __init__(self, part: files.DatasetUpload) -> None:
        self.part, self.pending = part, bytearray()

    def write(self, data: bytes) -> None:
        self.pending += self.part.feed(data)
        if len(self.pending) >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.pending and self.part.sink is not None:
            anyio.from_thread.run(self.part.sink.write, bytes(self.pending))
        self.pending.clear()


def _split_stream(
    chunks: AsyncIterator[bytes], fraction: float, seed: int, sinks: list[_PartSink]
) -> None:
    """Blocking (a worker thread): the stored source's lines through `split_lines`."""
    split_lines(_lines(chunks), fraction, seed, sinks[0], sinks[1])
    for sink in sinks:
        sink.flush()


def _lines(chunks: AsyncIterator[bytes]) -> Iterator[bytes]:
    rest = b""
    while chunk := anyio.from_thread.run(anext, chunks, b""):
        *lines, rest = (rest + chunk).split(b"\n")
        yield from lines
    if rest:
        yield rest


async def _discard(ctx: Context, file_ids: list[str]) -> None:
    for stored in await ctx.store.files.many(file_ids):
        await ctx.store.files.remove(stored)
        await ctx.storage.delete(uploads.stored_key(stored.org_id, stored.id))
        await uploads.release_upstream_copy(ctx, stored)


def _error(message: str) -> Error:
    return {
        "code": "invalid_training_file",
        "message": f"validation_split failed: {message}",
        "param": "validation_split",
    }
