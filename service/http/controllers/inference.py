"""The inference proxy: OpenAI's chat completions, legacy completions, Responses API (with its
stored responses: retrieve, delete, cancel, input items), embeddings and moderations.

Bodies are OpenAI's, taken as raw JSON and passed on after the org's policy (see
`service.domain.inference.request`); answers are the upstream's bytes, streamed as they arrive when
`stream` is true. These routes authenticate and audit themselves (`opt={"audit": "self"}`):
the audit record of a call is written when its usage is known, after the reply.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import FromPath
from litestar.response import Stream

from service.domain.inference.request import Api
from service.domain.inference.responses import StoredOp
from service.errors import TunegateError
from service.http.auth import bearer_token, context_of
from service.http.bodies import check_json_depth
from service.http.errors import status_and_type
from service.operations.inference import proxy as inference

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
SSE_TYPE = "text/event-stream"  # Litestar adds the charset
JSON_TYPE = "application/json"
DESCRIPTION = (
    "OpenAI's request and response shapes. `model` may be an alias of the org, one of its tuned "
    "models, or a base model its policy allows. The org's policy applies: PII redaction or "
    "blocking, `store: false`, the output-token cap, a hashed `user`, per-key rate limits."
)
RESPONSES_DESCRIPTION = DESCRIPTION + (
    " Hosted tools that make the upstream fetch or search (`web_search`, `file_search`, "
    "`code_interpreter`, `mcp`) need the policy's `hosted_tools`; a `previous_response_id` "
    "must name one of the org's own responses. `stream: true` passes the typed events through "
    "in order as they arrive."
)
STORED_DESCRIPTION = (
    "One of the org's stored responses (made through the gateway with `store` on); another "
    "org's response id is 404, as an unknown one is."
)


async def proxy(request: Request[Any, Any, Any], api: Api) -> Response[Any]:
    client = request.client.host if request.client else None
    call = inference.Call(context_of(request), api, request.state.get("request_id"), client)
    try:
        body = await request.body()
        check_json_depth(body)
        await inference.open_call(call, bearer_token(request), body)
        return await _answer(call)
    except TunegateError as error:
        await inference.fail(call, error, status_and_type(error)[0])
        raise


async def stored(request: Request[Any, Any, Any], op: StoredOp, response_id: str) -> Response[Any]:
    client = request.client.host if request.client else None
    call = inference.Call(context_of(request), "responses", request.state.get("request_id"), client)
    try:
        query = list(request.query_params.multi_items())
        await inference.open_stored(call, bearer_token(request), op, response_id, query)
        return await _answer(call)
    except TunegateError as error:
        await inference.fail(call, error, status_and_type(error)[0])
        raise


async def _answer(call: inference.Call) -> Response[Any]:
    assert call.prepared is not None
    if not call.prepared.stream:
        completion = await inference.complete(call)
        return Response(
            completion.content,
            status_code=completion.status,
            headers={**completion.headers, **call.headers},
            media_type=completion.headers.get("content-type", JSON_TYPE),
            background=BackgroundTask(inference.finish_completion, call, completion),
        )
    upstream = await inference.open_stream(call)
    chunks = inference.relay(call, upstream)
    # Runs after the body, also when a departed client cut it short (or never let it start):
    # it closes the upstream stream and records the call.
    return Stream(
        chunks,
        status_code=upstream.status,
        headers={**SSE_HEADERS, **call.headers},
        media_type=SSE_TYPE,
        background=BackgroundTask(inference.close_relay, call, chunks, upstream),
    )


class InferenceController(Controller):
    path = "/v1"
    tags = ["inference"]
    security = [{"OrgKey": []}]
    opt = {"audit": "self"}

    @post(
        "/chat/completions",
        operation_id="chat.completions.create",
        status_code=200,
        summary="Create a chat completion",
        description=DESCRIPTION,
    )
    async def create_chat_completion(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await proxy(request, "chat")

    @post(
        "/completions",
        operation_id="completions.create",
        status_code=200,
        summary="Create a completion (legacy)",
        description=DESCRIPTION,
    )
    async def create_completion(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await proxy(request, "completions")

    @post(
        "/responses",
        operation_id="responses.create",
        status_code=200,
        summary="Create a model response (Responses API)",
        description=RESPONSES_DESCRIPTION,
    )
    async def create_response(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await proxy(request, "responses")

    @get(
        "/responses/{response_id:str}",
        operation_id="responses.retrieve",
        summary="Retrieve a stored response (`stream=true`: its events)",
        description=STORED_DESCRIPTION,
    )
    async def retrieve_response(
        self, request: Request[Any, Any, Any], response_id: FromPath[str]
    ) -> Response[Any]:
        return await stored(request, "retrieve", response_id)

    @delete(
        "/responses/{response_id:str}",
        operation_id="responses.delete",
        status_code=200,
        summary="Delete a stored response",
        description=STORED_DESCRIPTION,
    )
    async def delete_response(
        self, request: Request[Any, Any, Any], response_id: FromPath[str]
    ) -> Response[Any]:
        return await stored(request, "delete", response_id)

    @post(
        "/responses/{response_id:str}/cancel",
        operation_id="responses.cancel",
        status_code=200,
        summary="Cancel a background response",
        description=STORED_DESCRIPTION,
    )
    async def cancel_response(
        self, request: Request[Any, Any, Any], response_id: FromPath[str]
    ) -> Response[Any]:
        return await stored(request, "cancel", response_id)

    @get(
        "/responses/{response_id:str}/input_items",
        operation_id="responses.input_items.list",
        summary="List a stored response's input items",
        description=STORED_DESCRIPTION,
    )
    async def list_input_items(
        self, request: Request[Any, Any, Any], response_id: FromPath[str]
    ) -> Response[Any]:
        return await stored(request, "input_items", response_id)

    @post(
        "/embeddings",
        operation_id="embeddings.create",
        status_code=200,
        summary="Create embeddings",
        description=DESCRIPTION
        + " Inputs may be strings or token ids (token ids only when the policy allows parts "
        "it cannot scan); `encoding_format: base64` answers pass through byte for byte.",
    )
    async def create_embeddings(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await proxy(request, "embeddings")

    @post(
        "/moderations",
        operation_id="moderations.create",
        status_code=200,
        summary="Classify text and images for harmful content",
        description=DESCRIPTION + " `model` defaults to `omni-moderation-latest`.",
    )
    async def create_moderation(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await proxy(request, "moderations")
