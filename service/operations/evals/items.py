"""A run's items: inline in its data source, or read from a stored file of purpose `evals`.

A file source is checked when the run is created (the org's, of purpose `evals`, its bytes
kept) and read again by each task that takes the run forward: the stored bytes never change,
so item indices stay those of the first task, and a resumed run skips what it already kept.
"""

from __future__ import annotations

from service.domain.evals.items import rows_of
from service.domain.evals.request import CompletionsSource, FileId, JsonlSource, Row
from service.domain.tenancy.access import Principal
from service.errors import InvalidRequest, NotFound
from service.operations.context import Context
from service.operations.datasets import files, uploads
from service.storage import ObjectMissing

PARAM = "data_source.source.id"


async def check_source(
    ctx: Context, principal: Principal, source: JsonlSource | CompletionsSource
) -> None:
    if not isinstance(source.source, FileId):
        return
    file_id = source.source.id
    try:
        record = await files.get_file(ctx, principal, file_id)
    except NotFound as missing:
        raise NotFound(missing.message, param=PARAM, code="file_not_found") from None
    if record.purpose != files.EVALS:
        message = f"File {file_id} was not uploaded with purpose 'evals'."
        raise InvalidRequest(message, param=PARAM, code="invalid_file_purpose")
    if record.bytes_deleted_at is not None:
        message = f"The bytes of {file_id} were deleted under the org's retention policy."
        raise InvalidRequest(message, param=PARAM, code="file_content_deleted")


async def read_rows(
    ctx: Context, org_id: str, source: JsonlSource | CompletionsSource
) -> list[Row]:
    """The run's rows in order; raises `NotFound` when its file or the file's bytes are gone."""
    if not isinstance(source.source, FileId):
        return list(source.source.content)
    file_id = source.source.id
    record = await ctx.store.files.get(file_id)
    if record is None or record.org_id != org_id or record.bytes_deleted_at is not None:
        raise NotFound(f"The run's file {file_id} is gone.", param=PARAM)
    try:
        data = b"".join([c async for c in ctx.storage.read(uploads.stored_key(org_id, file_id))])
    except ObjectMissing:
        raise NotFound(f"The run's file {file_id} is gone.", param=PARAM) from None
    return rows_of(data)
