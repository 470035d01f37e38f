"""Files and Uploads endpoints: `/v1/files...` and `/v1/uploads...`."""

from __future__ import annotations

import hashlib
from typing import Any

from litestar import Response, delete, get, post
from litestar.datastructures import UploadFile
from litestar.params import FromPath

from service.sandbox.errors import ApiError, invalid, not_found
from service.sandbox.objects import JSON, StoredFile, Upload, list_json, now, paginate
from service.sandbox.state import Run
from service.sandbox.web import AnyRequest, json_body, limit_of, ok, run_of

PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
MAX_UPLOAD_BYTES = 8 * 1024**3


def _check_name(filename: str, purpose: str) -> None:
    if purpose not in PURPOSES:
        raise invalid(f"'{purpose}' is not one of {sorted(PURPOSES)} - 'purpose'", "purpose")
    if purpose == "fine-tune" and not filename.endswith(".jsonl"):
        raise invalid("Invalid file format for Fine-Tuning API. Must be .jsonl", "file")


def _file(run: Run, file_id: str) -> StoredFile:
    found = run.files.get(file_id)
    if found is None:
        raise not_found(f"No such File object: {file_id}", "id")
    return found


async def _form_file(request: AnyRequest, field: str) -> tuple[UploadFile, dict[str, Any]]:
    form = await request.form()
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise invalid(f"'{field}' must be a file part of a multipart/form-data body", field)
    return upload, dict(form)


@post("/v1/files", status_code=200)
async def create_file(request: AnyRequest) -> Response[bytes]:
    upload, form = await _form_file(request, "file")
    purpose, filename = str(form.get("purpose", "")), upload.filename or "file"
    _check_name(filename, purpose)
    stored = StoredFile(filename, purpose, await upload.read())
    await upload.close()
    run_of(request).files[stored.id] = stored
    return ok(stored.to_json())


@get("/v1/files")
async def list_files(request: AnyRequest) -> Response[bytes]:
    query = request.query_params
    files = list(run_of(request).files.values())
    if purpose := query.get("purpose"):
        files = [f for f in files if f.purpose == purpose]
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise invalid("order must be 'asc' or 'desc'", "order")
    if order == "desc":
        files.reverse()
    chunk, more = paginate(
        files, query.get("after"), limit_of(request, 10_000, 10_000), lambda f: f.id
    )
    return ok(list_json([f.to_json() for f in chunk], more))


@get("/v1/files/{file_id:str}")
async def retrieve_file(request: AnyRequest, file_id: FromPath[str]) -> Response[bytes]:
    return ok(_file(run_of(request), file_id).to_json())


@delete("/v1/files/{file_id:str}", status_code=200)
async def delete_file(request: AnyRequest, file_id: FromPath[str]) -> Response[bytes]:
    run = run_of(request)
    _file(run, file_id)
    del run.files[file_id]
    return ok({"id": file_id, "object": "file", "deleted": True})


@get("/v1/files/{file_id:str}/content")
async def file_content(request: AnyRequest, file_id: FromPath[str]) -> Response[bytes]:
    content = _file(run_of(request), file_id).content
    return Response(content, media_type="application/octet-stream")


def _pending(run: Run, upload_id: str) -> Upload:
    upload = run.uploads.get(upload_id)
    if upload is None:
        raise not_found(f"No such Upload object: {upload_id}", "upload_id")
    if upload.status != "pending":
        raise invalid(f"Upload {upload_id} is {upload.status}; it no longer accepts changes")
    return upload


@post("/v1/uploads", status_code=200)
async def create_upload(request: AnyRequest) -> Response[bytes]:
    body = await json_body(request)
    size, filename, purpose = body.get("bytes"), body.get("filename"), body.get("purpose")
    if not isinstance(size, int) or not 0 <= size <= MAX_UPLOAD_BYTES:
        raise invalid("bytes must be an integer of at most 8 GB", "bytes")
    if not isinstance(filename, str) or not filename or not isinstance(purpose, str):
        raise invalid("filename and purpose are required", "filename")
    _check_name(filename, purpose)
    upload = Upload(filename, purpose, size, str(body.get("mime_type", "")))
    run_of(request).uploads[upload.id] = upload
    return ok(upload.to_json())


@post("/v1/uploads/{upload_id:str}/parts", status_code=200)
async def add_part(request: AnyRequest, upload_id: FromPath[str]) -> Response[bytes]:
    upload = _pending(run_of(request), upload_id)
    data, _ = await _form_file(request, "data")
    part_id = f"part_{len(upload.parts)}_{upload.id.removeprefix('upload_')}"
    upload.parts[part_id] = await data.read()
    await data.close()
    return ok({"id": part_id, "object": "upload.part", "created_at": now(), "upload_id": upload.id})


def _assemble(upload: Upload, body: JSON) -> bytes:
    part_ids = body.get("part_ids")
    if not isinstance(part_ids, list) or not all(p in upload.parts for p in part_ids):
        raise invalid("part_ids must list parts of this upload", "part_ids")
    content = b"".join(upload.parts[p] for p in part_ids)
    if len(content) != upload.size:
        message = (
            f"The number of bytes uploaded ({len(content)}) does not match the number of bytes "
            f"specified ({upload.size})."
        )
        raise invalid(message, "part_ids")
    md5 = body.get("md5")
    if md5 and hashlib.md5(content, usedforsecurity=False).hexdigest() != md5:
        raise ApiError(400, "The md5 checksum does not match the uploaded bytes.", param="md5")
    return content


@post("/v1/uploads/{upload_id:str}/complete", status_code=200)
async def complete_upload(request: AnyRequest, upload_id: FromPath[str]) -> Response[bytes]:
    run = run_of(request)
    upload = _pending(run, upload_id)
    content = _assemble(upload, await json_body(request))
    upload.file = StoredFile(upload.filename, upload.purpose, content)
    upload.status, upload.parts = "completed", {}
    run.files[upload.file.id] = upload.file
    return ok(upload.to_json())


@post("/v1/uploads/{upload_id:str}/cancel", status_code=200)
async def cancel_upload(request: AnyRequest, upload_id: FromPath[str]) -> Response[bytes]:
    upload = _pending(run_of(request), upload_id)
    upload.status, upload.parts = "cancelled", {}
    return ok(upload.to_json())


HANDLERS = [
    create_file,
    list_files,
    retrieve_file,
    delete_file,
    file_content,
    create_upload,
    add_part,
    complete_upload,
    cancel_upload,
]
