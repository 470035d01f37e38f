"""Datasets: receive and validate an upload, list, read and delete.

An upload is validated while it streams into storage (`open_upload`): the validated bytes
(redacted when the org's policy says so) go to the object as they come, and the object appears
only when the whole file is valid; a rejected or broken-off upload leaves nothing behind (the
file backend's part file is removed, the S3 multipart upload aborted). Handing the bytes
upstream is `uploads`' job; an `evals` file (a run's items) is never handed over.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from service.domain.datasets.validate import DatasetOptions, DatasetReport, DatasetValidator
from service.domain.evals.items import EvalItemsValidator
from service.domain.tenancy.access import Principal
from service.errors import (
    DatasetInvalid,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
)
from service.ids import new_id
from service.operations.context import Context
from service.operations.datasets import uploads
from service.storage import ObjectMissing, ObjectWriter
from service.store.datasets.files import FileRecord
from service.store.tenancy.orgs import OrgRecord

FINE_TUNE = "fine-tune"
EVALS = "evals"  # eval data: stays in the gateway, never handed to the upstream
PURPOSES = (FINE_TUNE, EVALS)


def check_filename(filename: str | None) -> str:
    name = os.path.basename(filename or "")
    if not name.lower().endswith(".jsonl"):
        raise InvalidRequest(
            "Files must be JSONL: the file name must end in '.jsonl'.",
            param="file",
            code="invalid_file_format",
        )
    return name


class DatasetUpload:
    """One upload in flight: `feed` and `close` are the validator's blocking CPU work (run
    them in a worker thread); `write` and `finish` run them there and store what they return."""

    def __init__(
        self, ctx: Context, org: OrgRecord, filename: str, purpose: str | None = FINE_TUNE
    ) -> None:
        self.ctx = ctx
        self.org = org
        self.filename = check_filename(filename)
        self.file_id = new_id("file-")
        self.purpose = purpose
        options = DatasetOptions(
            pii_mode=org.policy.pii,
            pii_entities=tuple(org.policy.pii_entities),
            prices=ctx.prices,
        )
        kind = EvalItemsValidator if purpose == EVALS else DatasetValidator
        self.validator = kind(options)
        self.sink: ObjectWriter | None = None
        self.received = 0

    def feed(self, chunk: bytes) -> bytes:
        self.received += len(chunk)
        if self.received > self.ctx.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"The file is larger than this gateway's limit of "
                f"{self.ctx.settings.max_upload_bytes} bytes.",
                param="file",
            )
        return self.validator.feed(chunk)

    def close(self) -> tuple[bytes, DatasetReport]:
        tail = self.validator.finish()
        return tail, self.validator.report()

    async def write(self, chunk: bytes) -> None:
        assert self.sink is not None
        await self.sink.write(await anyio.to_thread.run_sync(self.feed, chunk))

    async def finish(self) -> DatasetReport:
        assert self.sink is not None
        tail, report = await anyio.to_thread.run_sync(self.close)
        await self.sink.write(tail)
        return report

    def check(self, report: DatasetReport, purpose: str | None) -> FileRecord:
        """The file's record, or the reason to reject it (raised inside `open_upload`, which
        then discards the bytes)."""
        if purpose not in PURPOSES:
            raise InvalidRequest(
                "tunegate stores fine-tuning datasets and eval data only: send "
                "purpose='fine-tune' or purpose='evals'.",
                param="purpose",
            )
        if purpose != self.purpose and EVALS in (purpose, self.purpose):
            raise InvalidRequest(
                "Send the 'purpose' field before the file part: an evals file is checked "
                "as it streams.",
                param="purpose",
            )
        if not report.valid:
            raise dataset_error(report, purpose)
        return FileRecord(
            id=self.file_id,
            org_id=self.org.id,
            filename=self.filename,
            purpose=purpose,
            bytes=report.bytes,
            sha256=report.sha256,
            created_at=int(time.time()),
            status="processed" if purpose == EVALS else "uploaded",
            summary=report_summary(report),
        )


@asynccontextmanager
async def open_upload(
    ctx: Context, org: OrgRecord, filename: str, purpose: str | None = FINE_TUNE
) -> AsyncIterator[DatasetUpload]:
    """An upload streaming into its object: stored when the block ends cleanly, discarded when
    it raises (an invalid file, a client gone, a cancelled task). `purpose` picks the checks
    (a fine-tuning dataset's unless it is 'evals')."""
    async with storing(DatasetUpload(ctx, org, filename, purpose)) as upload:
        yield upload


@asynccontextmanager
async def storing(upload: DatasetUpload) -> AsyncIterator[DatasetUpload]:
    """`upload` with its object open for writing (see `open_upload`)."""
    key = uploads.stored_key(upload.org.id, upload.file_id)
    async with upload.ctx.storage.writer(key) as sink:
        upload.sink = sink
        yield upload


def dataset_error(report: DatasetReport, purpose: str = FINE_TUNE) -> DatasetInvalid:
    first = report.errors[0] if report.errors else None
    where = f"line {first.line}: " if first and first.line else ""
    what = "evals file" if purpose == EVALS else "fine-tuning dataset"
    message = f"Invalid {what}: {where}{first.message if first else 'invalid'}"
    total = sum(report.error_counts.values())
    if total > 1:
        message += f" (and {total - 1} more problems)"
    return DatasetInvalid(
        message,
        param="file",
        code="invalid_dataset",
        extra={
            "envelope": {
                "line": first.line if first else None,
                "errors": [issue.model_dump() for issue in report.errors],
                "error_counts": report.error_counts,
            }
        },
    )


def report_summary(report: DatasetReport) -> dict[str, object]:
    """What the audit record and the file record keep of a report."""
    return {
        "format": report.format,
        "examples": report.examples,
        "bytes": report.bytes,
        "sha256": report.sha256,
        "total_tokens": report.tokens.total if report.tokens else None,
        "billing_tokens": report.tokens.billing_tokens if report.tokens else None,
        "default_epochs": report.default_epochs,
        "warnings": {warning.kind: warning.count for warning in report.warnings},
        "pii": {
            "mode": report.pii.mode,
            "counts": report.pii.counts,
            "redacted": report.pii.redacted,
        },
    }


async def save_upload(ctx: Context, record: FileRecord, report: DatasetReport) -> None:
    await ctx.store.files.create(record, report.model_dump_json(), uploads.sweeper_retry_at(ctx))
    if record.status == "uploaded":  # waits for the hand-off; evals files stay here
        await uploads.queue_upload(ctx, record.id, job_id=f"upload-{record.id}")


def file_not_found(file_id: str) -> NotFound:
    return NotFound(f"No such File object: {file_id}", param="id", code="file_not_found")


async def get_file(ctx: Context, principal: Principal, file_id: str) -> FileRecord:
    record = await ctx.store.files.get(file_id)
    if record is None or record.org_id != principal.org_id:
        raise file_not_found(file_id)
    return record


async def list_files(ctx: Context, principal: Principal, purpose: str | None) -> list[FileRecord]:
    """Newest first."""
    assert principal.org_id is not None
    ids = await ctx.store.files.list_ids(principal.org_id)
    records = await ctx.store.files.many(list(reversed(ids)))
    return [record for record in records if purpose is None or record.purpose == purpose]


async def file_report(ctx: Context, principal: Principal, file_id: str) -> str:
    await get_file(ctx, principal, file_id)
    report = await ctx.store.files.report(file_id)
    if report is None:
        raise NotFound(f"No report for file {file_id}", param="id")
    return report


async def content_chunks(ctx: Context, principal: Principal, file_id: str) -> AsyncIterator[bytes]:
    """The stored bytes of one of the org's files, in chunks."""
    record = await get_file(ctx, principal, file_id)
    chunks = ctx.storage.read(uploads.stored_key(record.org_id, record.id))
    try:
        first = b"" if record.bytes_deleted_at is not None else await anext(chunks, b"")
    except ObjectMissing:
        first = None
    if record.bytes_deleted_at is not None or first is None:
        raise NotFound(
            f"The bytes of {file_id} were deleted under the org's retention policy.",
            param="id",
            code="file_content_deleted",
        )
    return _prepend(first, chunks)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def delete_file(ctx: Context, principal: Principal, file_id: str) -> FileRecord:
    record = await get_file(ctx, principal, file_id)
    await ctx.store.files.remove(record)
    await ctx.storage.delete(uploads.stored_key(record.org_id, record.id))
    await uploads.release_upstream_copy(ctx, record)
    return record
