"""`validation_split`: the worker carves a validation file out of the training file.

The caller's stored training file is read line by line through `splits.split_lines` (the job's
seed fixes which lines go where, so the split is reproducible) into two new uploads of the org,
validated like any upload (`files.DatasetUpload`), recorded as tunegate files and handed to the
upstream like any other (`files.save_upload`). The job names its two files before they are
written; a worker that dies half-way leaves files the retry deletes before splitting again.
"""

from __future__ import annotations

import anyio

from service.domain.datasets import DatasetReport, DatasetValidator
from service.domain.splits import MIN_VALIDATION, split_lines
from service.errors import InvalidRequest
from service.operations import files, uploads
from service.operations.context import Context
from service.operations.job_records import fail_at_gateway
from service.operations.tenancy import get_org
from service.store.files import FileRecord
from service.store.jobs import JobRecord

Made = list[tuple[FileRecord, DatasetReport]]


async def ensure_split(ctx: Context, record: JobRecord) -> JobRecord:
    """The job with both parts of its split stored (or failed, when the split cannot be)."""
    if record.split_files and len(await ctx.store.files.many(record.split_files)) == 2:
        return record
    await _discard(ctx, record.split_files)
    source = await ctx.store.files.get(record.request["training_file"])
    if source is None or source.bytes_deleted_at is not None:
        return await fail_at_gateway(ctx, record, _error("The training file was deleted."))
    org = await get_org(ctx.store, record.org_id)
    name = source.filename.removesuffix(".jsonl")
    parts = [
        await anyio.to_thread.run_sync(files.DatasetUpload, ctx, org, f"{name}.{part}.jsonl")
        for part in ("train", "validation")
    ]
    named = await _name_parts(ctx, record, [part.file_id for part in parts])
    try:
        fraction = float(record.request["validation_split"])
        made = await anyio.to_thread.run_sync(_carve, ctx, source, parts, fraction, record.seed)
    except InvalidRequest as error:
        return await fail_at_gateway(ctx, named, _error(error.message))
    for stored, report in made:
        await files.save_upload(ctx, stored, report)
    return named


async def _name_parts(ctx: Context, record: JobRecord, file_ids: list[str]) -> JobRecord:
    def name(current: JobRecord) -> JobRecord:
        current.split_files = file_ids
        return current

    updated = await ctx.store.jobs.update(record.id, name)
    assert updated is not None
    return updated


def _carve(
    ctx: Context,
    source: FileRecord,
    parts: list[files.DatasetUpload],
    fraction: float,
    seed: int,
) -> Made:
    """Blocking: split, validate both parts, then move both into place (or neither)."""
    train, validation = parts
    options = validation.validator.options.model_copy(update={"min_examples": MIN_VALIDATION})
    validation.validator = DatasetValidator(options)
    try:
        with uploads.stored_path(ctx, source).open("rb") as handle:
            split_lines(handle, fraction, seed, train, validation)
        reports = [part.finish() for part in parts]
        for report in reports:
            if not report.valid:
                raise files.dataset_error(report)
        return [
            (part.commit(report, files.FINE_TUNE), report)
            for part, report in zip(parts, reports, strict=True)
        ]
    except BaseException:
        for part in parts:
            part.abort()
        raise


async def _discard(ctx: Context, file_ids: list[str]) -> None:
    for stored in await ctx.store.files.many(file_ids):
        await ctx.store.files.remove(stored)
        uploads.stored_path(ctx, stored).unlink(missing_ok=True)
        await uploads.release_upstream_copy(ctx, stored)


def _error(message: str) -> dict[str, object]:
    return {
        "code": "invalid_training_file",
        "message": f"validation_split failed: {message}",
        "param": "validation_split",
    }
