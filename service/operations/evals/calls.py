"""An eval run's model calls, each one through the completion proxy's own path as the run's
key: routing, policy, PII, rate limits, budgets, usage and audit apply to every sample and
every grader call exactly as to a client's call. A rate-limited call waits and tries again."""

from __future__ import annotations

from typing import Any

import anyio
import orjson

from service.errors import RateLimited, TunegateError, UpstreamError
from service.operations.context import Context
from service.operations.inference import proxy
from service.store.inference.models import CallerView

RATE_LIMIT_TRIES = 5


def _status(error: TunegateError) -> int:
    if isinstance(error, RateLimited):
        return 429
    return 502 if isinstance(error, UpstreamError) else 400


async def _once(ctx: Context, view: CallerView, api: Any, body: dict[str, Any], run_id: str) -> Any:
    call = proxy.Call(ctx, api, f"req_{run_id}", None)
    try:
        await proxy.open_call_as(call, view, orjson.dumps(body))
        completion = await proxy.complete(call)
    except TunegateError as error:
        await proxy.fail(call, error, _status(error))
        raise
    await proxy.finish_completion(call, completion)
    if completion.status >= 400:
        raise UpstreamError(completion.content.decode(errors="replace")[:300])
    return orjson.loads(completion.content)


async def call_model(
    ctx: Context, view: CallerView, api: Any, body: dict[str, Any], run_id: str
) -> Any:
    for attempt in range(RATE_LIMIT_TRIES):
        try:
            return await _once(ctx, view, api, body, run_id)
        except RateLimited as error:
            if attempt == RATE_LIMIT_TRIES - 1:
                raise
            await anyio.sleep(min(error.retry_after or 1.0, 30.0))
    raise AssertionError("unreachable")


async def chat(
    ctx: Context,
    view: CallerView,
    run_id: str,
    model: str,
    messages: list[dict[str, str]],
    sampling: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = {"model": model, "messages": messages, **(sampling or {})}
    reply: dict[str, Any] = await call_model(ctx, view, "chat", body, run_id)
    return reply


def text_of(reply: dict[str, Any]) -> str:
    choices = reply.get("choices") or [{}]
    return str((choices[0].get("message") or {}).get("content") or "")


async def embed(
    ctx: Context, view: CallerView, run_id: str, texts: list[str], model: str
) -> list[list[float]]:
    body = {"model": model, "input": texts}
    reply = await call_model(ctx, view, "embeddings", body, run_id)
    return [row["embedding"] for row in reply["data"]]
