"""The completion proxy: one call from the client's bytes to the upstream and back.

    open_call      key (cached view), role, body, routing, policy, rate limit: may refuse
    complete       not streamed: one upstream POST; `finish_completion` runs after the reply
    relay          streamed: SSE passed through as it arrives; finishes when the stream ends
    fail           a refused or failed call: its audit record (and the tokens it reserved)

Before the upstream call a request costs no Redis round trip when its caller's view is cached
(see `service.store.inference.models`) and the org sets no rate limit, one otherwise. After
it, usage, the rate-limit correction and the audit record are written off the reply's path,
batched with other calls that finish at the same time (see
`service.operations.inference.usage.CallRecorder`).
Every call, refused ones included, ends in exactly one audit record.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from service.config import Settings
from service.domain.budgets.costs import inference_worst_case
from service.domain.inference.output import (
    SseRelay,
    Usage,
    completion_texts,
    logged_content,
    usage_of,
)
from service.domain.inference.ratelimit import RateDecision, estimate_tokens, is_limited
from service.domain.inference.request import (
    Api,
    Prepared,
    model_texts,
    parse_body,
    prepare,
    refused_by_policy,
    route_model,
    scan_pii,
)
from service.domain.pii import detect as pii
from service.domain.tenancy.access import Principal
from service.domain.tenancy.policy import Policy
from service.errors import (
    RateLimited,
    TunegateError,
    UpstreamError,
    UpstreamRejected,
)
from service.logging import get_logger
from service.operations.budgets import charges as budget_charges
from service.operations.context import Context
from service.operations.inference.models import (
    caller_view,
    model_not_found,
    model_refused_by_policy,
)
from service.operations.inference.usage import DISCONNECTED, Metered, cost_nanos, record_call
from service.store.inference.models import CallerView
from service.upstream import Completion, CompletionStream

log = get_logger("tunegate.inference")
# Large scans run in a worker thread so the event loop keeps serving. One at a time: the scan
# is pure Python and holds the interpreter lock, so a second thread would add no throughput
# and halve how often the loop gets the interpreter to answer everyone else.
_SCAN_THREADS = anyio.CapacityLimiter(1)
PATHS = {"chat": "/chat/completions", "completions": "/completions"}
ACTIONS = {"chat": "chat.completions.create", "completions": "completions.create"}


@dataclass(slots=True)
class Call:
    ctx: Context
    api: Api
    request_id: str | None
    client: str | None
    started: float = field(default_factory=time.perf_counter)
    view: CallerView | None = None
    requested: str | None = None
    prepared: Prepared | None = None
    rate: RateDecision | None = None
    reserved_tokens: int = 0
    budget: budget_charges.Reservation | None = None
    relaying: bool = False

    @property
    def headers(self) -> dict[str, str]:
        return self.rate.headers() if self.rate is not None else {}

    @property
    def principal(self) -> Principal | None:
        if self.view is None:
            return None
        return Principal(self.view.org.id, self.view.key.id, self.view.key.role)


def user_hash_key(settings: Settings) -> bytes:
    """`TUNEGATE_SECRET_KEY`, or a key derived from the admin token (same on every process)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    return hmac.new(token.encode(), b"tunegate:user-hash", hashlib.sha256).digest()


async def open_call(call: Call, token: str, raw: bytes) -> Prepared:
    """Everything before the upstream call; raises the error that refuses it."""
    ctx = call.ctx
    view = call.view = await caller_view(ctx, token)
    body = parse_body(raw, call.api)
    call.requested = body["model"]
    policy = view.org.policy
    model = route_model(body["model"], policy, view.models, view.aliases)
    if model is None:
        if refused_by_policy(body["model"], policy, view.aliases):
            raise model_refused_by_policy(body["model"])
        raise model_not_found(body["model"])
    user_key = user_hash_key(ctx.settings)
    prepared = call.prepared = prepare(
        body, call.api, policy, model=model, org_id=view.org.id, user_key=user_key
    )
    await admit(call, prepared)
    await reserve_budget(call, prepared)
    await scan_request(ctx.settings, prepared, policy, len(raw))
    return prepared


def scan_budget(settings: Settings) -> pii.ScanBudget:
    """What one request may cost the PII scanner (number candidates: five per finding)."""
    return pii.ScanBudget(
        max_chars=settings.pii_max_scan_chars,
        max_findings=settings.pii_max_findings,
        max_candidates=settings.pii_max_findings * 5,
    )


async def scan_request(settings: Settings, prepared: Prepared, policy: Policy, size: int) -> None:
    """The PII policy over the request, in a worker thread when the body is large."""
    if policy.pii == "allow":
        return
    budget = scan_budget(settings)
    if size <= settings.pii_thread_bytes:
        scan_pii(prepared, policy, budget)
        return
    await anyio.to_thread.run_sync(scan_pii, prepared, policy, budget, limiter=_SCAN_THREADS)


async def admit(call: Call, prepared: Prepared) -> None:
    assert call.view is not None
    limits = call.view.org.policy.rate_limits
    if limits is None or not is_limited(limits):
        return
    if limits.tokens_per_minute:
        texts = model_texts(prepared.body)
        call.reserved_tokens = estimate_tokens(texts, prepared.output_limit, prepared.choices)
    call.rate = await call.ctx.store.rate_limits.admit(
        call.view.key.id, limits, call.reserved_tokens
    )
    if not call.rate.allowed:
        call.reserved_tokens = 0
        raise RateLimited(
            f"Rate limit reached for this key on {call.rate.exhausted} per minute. "
            f"Try again in {call.rate.retry_after:.2f}s.",
            retry_after=call.rate.retry_after,
            extra={"headers": call.rate.headers()},
        )


async def reserve_budget(call: Call, prepared: Prepared) -> None:
    """The call's worst-case cost against the org's budgets (settled or released in `_record`)."""
    assert call.view is not None
    budgets = call.view.org.policy.budgets
    if budgets is None:
        return
    texts = model_texts(prepared.body)
    cost = inference_worst_case(
        prepared.model, texts, prepared.output_limit, prepared.choices, call.ctx.prices
    )
    org_id, key_id = call.view.org.id, call.view.key.id
    call.budget = await budget_charges.reserve(call.ctx, org_id, budgets, key_id, "inference", cost)


async def _settle_budget(call: Call, usage: Usage | None) -> None:
    if call.budget is None:
        return
    spent = 0
    if usage is not None and call.prepared is not None:
        spent = cost_nanos(call.ctx, call.prepared.model, usage)
    budget, call.budget = call.budget, None
    await budget_charges.settle(call.ctx, budget, spent)


def _upstream_error(error: UpstreamError) -> TunegateError:
    """The upstream's own rate limit reaches the client as one (with its Retry-After)."""
    if isinstance(error, UpstreamRejected) and error.status == 429:
        return RateLimited(error.message, retry_after=error.retry_after or 1.0, code=error.code)
    return error


async def complete(call: Call) -> Completion:
    assert call.prepared is not None
    try:
        return await call.ctx.upstream.post_completion(PATHS[call.api], call.prepared.body)
    except UpstreamError as error:
        raise _upstream_error(error) from error


async def finish_completion(call: Call, completion: Completion) -> None:
    """After the reply went out: usage, rate-limit correction and audit."""
    assert call.prepared is not None and call.view is not None
    try:
        payload = orjson.loads(completion.content)
    except orjson.JSONDecodeError:
        payload = None
    usage = usage_of(payload) or Usage(call.reserved_tokens, 0, estimated=True)
    texts = completion_texts(payload, call.api) if _logs_content(call) else []
    await _finish(call, usage, completion.status, texts)


async def open_stream(call: Call) -> CompletionStream:
    assert call.prepared is not None
    try:
        return await call.ctx.upstream.stream_completion(PATHS[call.api], call.prepared.body)
    except UpstreamError as error:
        raise _upstream_error(error) from error


async def relay(call: Call, upstream: CompletionStream) -> AsyncGenerator[bytes, None]:
    """The client's stream. Closing it early (a client that left) closes the upstream's."""
    assert call.prepared is not None
    sse = SseRelay(
        call.api, forward_usage=call.prepared.client_wants_usage, collect_text=_logs_content(call)
    )
    status, error = DISCONNECTED, None
    call.relaying = True
    try:
        async for chunk in upstream:
            if out := sse.feed(chunk):
                yield out
        if tail := sse.flush():
            yield tail
        status = upstream.status
    except UpstreamError as failure:
        status, error = 502, failure
        yield b"data: " + orjson.dumps({"error": _error_body(failure)}) + b"\n\n"
    finally:
        with anyio.CancelScope(shield=True):
            await upstream.aclose()
            usage = sse.usage or sse.estimated_usage(call.reserved_tokens)
            await _finish(call, usage, status, sse.completions(), error)


async def close_relay(
    call: Call, chunks: AsyncGenerator[bytes, None], upstream: CompletionStream
) -> None:
    """After the response: end the relay; a relay that never started (its client left before
    the first byte) still closes the upstream stream and records the call."""
    await chunks.aclose()
    if not call.relaying:
        await upstream.aclose()
        await _finish(call, Usage(call.reserved_tokens, 0, estimated=True), DISCONNECTED, [])


def _error_body(error: TunegateError) -> dict[str, Any]:
    return {"message": error.message, "type": "upstream_error", "param": None, "code": error.code}


def _logs_content(call: Call) -> bool:
    return call.view is not None and call.view.org.policy.log_content != "none"


async def _finish(
    call: Call,
    usage: Usage,
    status: int,
    completions: list[str],
    error: TunegateError | None = None,
) -> None:
    assert call.prepared is not None and call.view is not None
    policy = call.view.org.policy
    details = _details(call)
    details |= {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    if usage.estimated:
        details["usage_estimated"] = True
    if error is not None:
        details["error"] = error.code
    if (content := logged_content(policy, call.api, call.prepared.body, completions)) is not None:
        details["content"] = content
    await _record(call, usage, status, details)


def _details(call: Call) -> dict[str, Any]:
    details: dict[str, Any] = {"model": call.requested}
    prepared = call.prepared
    if prepared is not None:
        details |= {"routed_to": prepared.model, "stream": prepared.stream}
        if prepared.pii_found:
            details["pii"] = dict(prepared.pii_found)
    details["ms"] = round((time.perf_counter() - call.started) * 1000, 2)
    return details


async def fail(call: Call, error: TunegateError, status: int) -> None:
    """Audit a refused or failed call, and give back the tokens it had reserved."""
    details = _details(call)
    details["error"] = error.code
    await _record(call, None, status, details, org_id=error.extra.get("org_id"))


async def _record(
    call: Call,
    usage: Usage | None,
    status: int,
    details: dict[str, Any],
    org_id: str | None = None,
) -> None:
    limits = call.view.org.policy.rate_limits if call.view is not None else None
    metered = Metered(
        principal=call.principal,
        org_id=org_id,
        action=ACTIONS[call.api],
        model=call.prepared.model if call.prepared is not None else None,
        usage=usage,
        reserved_tokens=call.reserved_tokens,
        tokens_per_minute=limits.tokens_per_minute if limits is not None else None,
        request_id=call.request_id,
        client=call.client,
        status=status,
        details=details,
    )
    try:
        await _settle_budget(call, usage)
        await record_call(call.ctx, metered)
    except Exception:  # the reply is decided already: nothing to tell the client, so log loudly
        log.error("call_record_failed", request_id=call.request_id, exc_info=True)
