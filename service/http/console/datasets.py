"""The console's datasets: the org's files, an upload form (plain multipart, so it works without
JavaScript) and a file's validation report. Uploads go through the same code as `POST /v1/files`."""

from __future__ import annotations

import json
from typing import Any

from litestar import Controller, Request, get, post
from litestar.params import FromPath
from litestar.response import Redirect, Template

from service.domain.tenancy.access import Capability
from service.http.auth import context_of, principal_of
from service.http.console.session import (
    CSRF_FIELD,
    EXCEPTION_HANDLERS,
    PageNo,
    check_csrf,
    page,
    paged,
    require_session,
)
from service.http.controllers.datasets import receive_upload
from service.http.path_ids import require_wellformed_ids
from service.operations.datasets import files

_DATASETS = {"org": True, "capability": Capability.DATASETS}


class DatasetPages(Controller):
    path = "/console/datasets"
    include_in_schema = False
    guards = [require_session, require_wellformed_ids]
    exception_handlers = EXCEPTION_HANDLERS

    @get("/", opt={**_DATASETS, "audit": "never"})
    async def datasets(self, request: Request[Any, Any, Any], page_no: PageNo = None) -> Template:
        found = await files.list_files(context_of(request), principal_of(request), None)
        return page(request, "datasets.html", **paged(found, page_no))

    @post(
        "/",
        operation_id="console.files.create",
        opt=_DATASETS,
        status_code=303,
        request_max_body_size=None,
    )
    async def upload(self, request: Request[Any, Any, Any]) -> Redirect:
        # The token rides in the query: it must be checked before the file's bytes are read.
        check_csrf(request, request.query_params.get(CSRF_FIELD))
        record = await receive_upload(request)
        request.state.audit_resource_id = record.id
        request.state.audit_details = record.summary
        return Redirect(f"/console/datasets/{record.id}", status_code=303)

    @get("/{file_id:str}", opt={**_DATASETS, "audit": "never"})
    async def report(self, request: Request[Any, Any, Any], file_id: FromPath[str]) -> Template:
        ctx, principal = context_of(request), principal_of(request)
        record = await files.get_file(ctx, principal, file_id)
        report = json.loads(await files.file_report(ctx, principal, file_id))
        return page(request, "dataset.html", file=record, report=report)
