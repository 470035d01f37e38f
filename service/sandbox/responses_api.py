"""A stored response's routes: `/v1/responses/{id}` (retrieve, `stream=true` for its events;
delete), `/v1/responses/{id}/cancel` and `/v1/responses/{id}/input_items`."""

from __future__ import annotations

from typing import Any

from litestar import Response, delete, get, post
from litestar.params import FromPath
from litestar.response import Stream

from service.sandbox import responses
from service.sandbox.errors import invalid, not_found
from service.sandbox.responses import StoredResponse
from service.sandbox.state import Run
from service.sandbox.web import AnyRequest, ok, run_of


def _stored(run: Run, response_id: str) -> StoredResponse:
    found = run.responses.get(response_id)
    if found is None:
        raise not_found(f"Response with id '{response_id}' not found.", "response_id")
    return found


@get("/v1/responses/{response_id:str}")
async def retrieve_response(request: AnyRequest, response_id: FromPath[str]) -> Response[Any]:
    kept = _stored(run_of(request), response_id)
    if request.query_params.get("stream", "").lower() != "true":
        return ok(kept.current())
    after = request.query_params.get("starting_after")
    try:
        starting_after = int(after) if after is not None else None
    except ValueError:
        raise invalid("starting_after must be an integer", "starting_after") from None
    if not kept.cancelled:  # a background response streamed runs to its end meanwhile
        kept.ready_at = 0.0
    events = responses.events(kept.current(), starting_after)
    return Stream(iter(events), media_type="text/event-stream")


@delete("/v1/responses/{response_id:str}", status_code=200)
async def delete_response(request: AnyRequest, response_id: FromPath[str]) -> Response[bytes]:
    run = run_of(request)
    _stored(run, response_id)
    del run.responses[response_id]
    return ok(responses.deleted(response_id))


@post("/v1/responses/{response_id:str}/cancel", status_code=200)
async def cancel_response(request: AnyRequest, response_id: FromPath[str]) -> Response[bytes]:
    return ok(responses.cancel(_stored(run_of(request), response_id)))


@get("/v1/responses/{response_id:str}/input_items")
async def list_input_items(request: AnyRequest, response_id: FromPath[str]) -> Response[bytes]:
    kept = _stored(run_of(request), response_id)
    return ok(responses.list_items(kept, dict(request.query_params)))


HANDLERS = [retrieve_response, delete_response, cancel_response, list_input_items]
