"""Files: OpenAI's `/v1/files` for fine-tuning datasets and eval data, validated on upload, plus
the report."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream

from service.domain.datasets.report import DatasetReport
from service.domain.tenancy.access import Capability
from service.errors import InvalidRequest, PayloadTooLarge
from service.http.auth import context_of, principal_of, require_org_key
from service.http.multipart import boundary_of, read_form
from service.http.path_ids import require_wellformed_ids
from service.http.schemas.common import FileDeleted, FileList, FileObject
from service.operations.datasets import files
from service.operations.tenancy.orgs import get_org
from service.store.datasets.files import FileRecord

MULTIPART_SLACK = 1 << 20


def file_object(record: FileRecord) -> FileObject:
    return FileObject(
        id=record.id,
        bytes=record.bytes,
        created_at=record.created_at,
        filename=record.filename,
        purpose=record.purpose,
        status=record.status,
        status_details=record.status_details,
    )


async def receive_upload(request: Request[Any, Any, Any]) -> FileRecord:
    """Stream the multipart body through validation into storage."""
    ctx, principal = context_of(request), principal_of(request)
    length = int(request.headers.get("content-length") or 0)
    if length > ctx.settings.max_upload_bytes + MULTIPART_SLACK:
        raise PayloadTooLarge(
            f"The file is larger than this gateway's limit of {ctx.settings.max_upload_bytes} "
            "bytes.",
            param="file",
        )
    boundary = boundary_of(request.headers.get("content-type", ""))
    org = await get_org(ctx.store, principal.org_id or "")
    upload: files.DatasetUpload | None = None
    async with contextlib.AsyncExitStack() as stack:

        async def on_file(filename: str, fields: dict[str, str]) -> None:
            nonlocal upload
            purpose = fields.get("purpose", files.FINE_TUNE)
            opened = files.open_upload(ctx, org, filename, purpose)
            upload = await stack.enter_async_context(opened)

        async def on_chunk(chunk: bytes) -> None:
            if upload is not None:
                await upload.write(chunk)

        form = await read_form(request.stream(), boundary, on_file, on_chunk)
        if upload is None:
            raise InvalidRequest("The upload has no 'file' part.", param="file")
        report = await upload.finish()
        record = upload.check(report, form.fields.get("purpose"))
    await files.save_upload(ctx, record, report)
    return record


class FilesController(Controller):
    path = "/v1/files"
    guards = [require_org_key, require_wellformed_ids]
    tags = ["files"]
    security = [{"OrgKey": []}]
    opt = {"capability": Capability.DATASETS}

    @post("/", operation_id="files.create", status_code=200, request_max_body_size=None)
    async def create_file(self, request: Request[Any, Any, Any]) -> FileObject:
        record = await receive_upload(request)
        request.state.audit_resource_id = record.id
        request.state.audit_details = record.summary
        return file_object(record)

    @get("/", operation_id="files.list")
    async def list_files(
        self,
        request: Request[Any, Any, Any],
        purpose: Annotated[str | None, QueryParameter()] = None,
        after: Annotated[str | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 10_000,
        order: Annotated[Literal["asc", "desc"], QueryParameter()] = "desc",
    ) -> FileList:
        records = await files.list_files(context_of(request), principal_of(request), purpose)
        return FileList.page([file_object(r) for r in records], after, limit, order)

    @get("/{file_id:str}", operation_id="files.retrieve")
    async def retrieve_file(
        self, request: Request[Any, Any, Any], file_id: FromPath[str]
    ) -> FileObject:
        return file_object(
            await files.get_file(context_of(request), principal_of(request), file_id)
        )

    @delete("/{file_id:str}", operation_id="files.delete", status_code=200)
    async def delete_file(
        self, request: Request[Any, Any, Any], file_id: FromPath[str]
    ) -> FileDeleted:
        request.state.audit_resource_id = file_id
        await files.delete_file(context_of(request), principal_of(request), file_id)
        return FileDeleted(id=file_id)

    @get(
        "/{file_id:str}/content",
        operation_id="files.content",
        media_type="application/octet-stream",
        responses={
            200: ResponseSpec(
                bytes,
                description="The stored bytes (redacted when the org's policy redacts)",
                media_type="application/octet-stream",
                generate_examples=False,
            )
        },
    )
    async def file_content(self, request: Request[Any, Any, Any], file_id: FromPath[str]) -> Stream:
        chunks = await files.content_chunks(context_of(request), principal_of(request), file_id)
        return Stream(
            chunks,
            media_type="application/octet-stream",
            headers={"content-disposition": "inline"},
        )

    @get(
        "/{file_id:str}/report",
        operation_id="files.report",
        responses={
            200: ResponseSpec(
                DatasetReport, description="The validation report", generate_examples=False
            )
        },
    )
    async def file_report(
        self, request: Request[Any, Any, Any], file_id: FromPath[str]
    ) -> Response[bytes]:
        report = await files.file_report(context_of(request), principal_of(request), file_id)
        return Response(report.encode(), media_type="application/json")
