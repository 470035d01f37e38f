"""The console's playground: one prompt to several models through the proxy, as the session's
key would send it to `POST /v1/chat/completions` — routed, under the org's policy (PII, caps,
allowed models), rate-limited, budgeted, metered and audited the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from service.domain.tenancy.access import Capability, Principal, role_allows
from service.errors import AuthenticationFailed, PermissionDenied, TunegateError
from service.operations.context import Context
from service.operations.inference import proxy
from service.store.inference.models import CallerView

MAX_TOKENS = 256


@dataclass(frozen=True, slots=True)
class Answer:
    model: str
    text: str | None = None
    error: str | None = None
    total_tokens: int | None = None


async def session_caller(ctx: Context, principal: Principal) -> CallerView:
    """The proxy's view of the key a console session stands for (checked again here)."""
    view = await ctx.store.models.caller(principal.key_id or "")
    if view is None or view.key.revoked_at is not None or view.org.id != principal.org_id:
        raise AuthenticationFailed("This session's key is no longer valid.")
    if not role_allows(view.key.role, Capability.INFERENCE):
        raise PermissionDenied(f"A key with role '{view.key.role}' may not do this (inference).")
    return view


def chat_body(model: str, prompt: str) -> bytes:
    messages = [{"role": "user", "content": prompt}]
    return orjson.dumps({"model": model, "messages": messages, "max_tokens": MAX_TOKENS})


StatusOf = Callable[[TunegateError], int]


async def ask(
    call: proxy.Call, view: CallerView, model: str, prompt: str, status_of: StatusOf
) -> Answer:
    try:
        await proxy.open_call_as(call, view, chat_body(model, prompt))
        completion = await proxy.complete(call)
    except TunegateError as error:
        await proxy.fail(call, error, status_of(error))
        return Answer(model, error=error.message)
    await proxy.finish_completion(call, completion)
    payload = orjson.loads(completion.content)
    if completion.status >= 400:
        return Answer(model, error=str((payload.get("error") or {}).get("message")))
    text = payload["choices"][0]["message"].get("content")
    return Answer(model, text=text, total_tokens=(payload.get("usage") or {}).get("total_tokens"))


async def compare(
    ctx: Context,
    principal: Principal,
    prompt: str,
    models: list[str],
    status_of: StatusOf,
    request_id: str | None = None,
    client: str | None = None,
) -> list[Answer]:
    """Each model's answer (or why it was refused), asked at once; `status_of` is the HTTP
    status an error would have had, for its audit record."""
    view = await session_caller(ctx, principal)
    asked = (
        ask(proxy.Call(ctx, "chat", request_id, client), view, model, prompt, status_of)
        for model in models
    )
    return list(await asyncio.gather(*asked))
