"""Datasets: receive and validate an upload, list, read and delete.

An upload is validated while it is written (`DatasetUpload`): the bytes land in a temporary file
under `TUNEGATE_DATA_DIR/tmp` and move into the org's folder only when the whole file is valid,
so a rejected upload leaves nothing behind. Files are readable by the gateway's user only (0600,
in 0700 folders). Handing the bytes upstream is `uploads`' job.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO

from service.domain.datasets.validate import DatasetOptions, DatasetReport, DatasetValidator
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
from service.store.datasets.files import FileRecord
from service.store.tenancy.orgs import OrgRecord

FINE_TUNE = "fine-tune"


def org_dir(ctx: Context, org_id: str) -> Path:
    return ctx.settings.data_dir / org_id


def private_dir(path: Path) -> Path:
    """`path`, created if need be, open to the gateway's user only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def check_filename(filename: str | None) -> str:
    name = os.path.basename(filename or "")
    if not name.lower().endswith(".jsonl"):
        raise InvalidRequest(
            "Fine-tuning files must be JSONL: the file name must end in '.jsonl'.",
            param="file",
            code="invalid_file_format",
        )
    return name


class DatasetUpload:
    """One upload in flight. `write` and `finish` do blocking I/O and CPU work: call them from a
    worker thread."""

    def __init__(self, ctx: Context, org: OrgRecord, filename: str) -> None:
        self.ctx = ctx
        self.org = org
        self.filename = check_filename(filename)
        self.file_id = new_id("file-")
        self.validator = DatasetValidator(
            DatasetOptions(
                pii_mode=org.policy.pii,
                pii_entities=tuple(org.policy.pii_entities),
                prices=ctx.prices,
            )
        )
        private_dir(ctx.settings.data_dir)
        self.tmp_path = private_dir(ctx.settings.data_dir / "tmp") / f"{self.file_id}.part"
        fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.handle: IO[bytes] | None = os.fdopen(fd, "wb")
        self.received = 0

    def write(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.ctx.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"The file is larger than this gateway's limit of "
                f"{self.ctx.settings.max_upload_bytes} bytes.",
                param="file",
            )
        assert self.handle is not None
        self.handle.write(self.validator.feed(chunk))

    def finish(self) -> DatasetReport:
        assert self.handle is not None
        self.handle.write(self.validator.finish())
        self.handle.close()
        self.handle = None
        return self.validator.report()

    def abort(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        self.tmp_path.unlink(missing_ok=True)

    def commit(self, report: DatasetReport, purpose: str | None) -> FileRecord:
        """Reject (and forget) an invalid upload, or move the bytes into place."""
        if purpose != FINE_TUNE:
            self.abort()
            raise InvalidRequest(
                "tunegate stores fine-tuning datasets only: send purpose='fine-tune'.",
                param="purpose",
            )
        if not report.valid:
            self.abort()
            raise dataset_error(report)
        target = private_dir(org_dir(self.ctx, self.org.id)) / f"{self.file_id}.jsonl"
        os.replace(self.tmp_path, target)
        return FileRecord(
            id=self.file_id,
            org_id=self.org.id,
            filename=self.filename,
            purpose=FINE_TUNE,
            bytes=report.bytes,
            sha256=report.sha256,
            created_at=int(time.time()),
            summary=report_summary(report),
        )


def dataset_error(report: DatasetReport) -> DatasetInvalid:
    first = report.errors[0] if report.errors else None
    where = f"line {first.line}: " if first and first.line else ""
    message = f"Invalid fine-tuning dataset: {where}{first.message if first else 'invalid'}"
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


async def content_path(ctx: Context, principal: Principal, file_id: str) -> Path:
    record = await get_file(ctx, principal, file_id)
    path = uploads.stored_path(ctx, record)
    if record.bytes_deleted_at is not None or not path.exists():
        raise NotFound(
            f"The bytes of {file_id} were deleted under the org's retention policy.",
            param="id",
            code="file_content_deleted",
        )
    return path


async def delete_file(ctx: Context, principal: Principal, file_id: str) -> FileRecord:
    record = await get_file(ctx, principal, file_id)
    await ctx.store.files.remove(record)
    uploads.stored_path(ctx, record).unlink(missing_ok=True)
    await uploads.release_upstream_copy(ctx, record)
    return record
