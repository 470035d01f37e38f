"""The inference proxy: one call from the client's bytes to the upstream and back.

Every proxied API (chat, legacy completions, Responses, embeddings, moderations; see
`request.SPECS`) and the Responses API's stored-response calls take the same path:

    open_call      key (cached view), role, body, routing, policy, rate limit: may refuse
    open_stored    a stored response's call (retrieve, delete, cancel, input items): the
                   caller's org must own the response, else it is unknown (404)
    complete       not streamed: one upstream call; `finish_completion` runs after the reply
    relay          streamed: SSE passed through as it arrives; finishes when the stream ends
    fail           a refused or failed call: its audit record (and the tokens it reserved)

A response the upstream stores gets its owner recorded before the client sees its id (see
`service.store.inference.responses`); a `background` response's usage is counted by the first
call that sees it finished (a retrieve, a cancel, or its own stream).

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
    SPECS,
    Api,
    Prepared,
    model_texts,
    parse_body,
    prepare,
    prompt_texts,
    refused_by_policy,
    route_model,
    scan_pii,
)
from service.domain.inference.responses import (
    STORED_OPS,
    StoredOp,
    is_open,
    response_id_of,
    stored_path,
    stored_query,
    streams,
    will_store,
)
from service.domain.pii import detect as pii
from service.domain.tenancy.access import Principal
from service.domain.tenancy.policy import Policy
from service.errors import (
    NotFound,
    RateLimited,
    TunegateError,
    Unavailable,
    UpstreamError,
    UpstreamRejected,
)
from service.ids import is_valid
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
from service.store.inference.responses import ResponseOwner
from service.upstream import Completion, CompletionStream

log = get_logger("tunegate.inference")
# Large scans run in a worker thread so the event loop keeps serving. One at a time: the scan
# is pure Python and holds the interpreter lock, so a second thread would add no throughput
# and halve how often the loop gets the interpreter to answer everyone else.
_SCAN_THREADS = anyio.CapacityLimiter(1)
PATHS = {api: spec.path for api, spec in SPECS.items()}
ACTIONS = {api: spec.action for api, spec in SPECS.items()}


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
    # A background response's reservation, held from its create until the call that counts its
    # usage (`counted`) settles it with that usage.
    background: budget_charges.Reservation | None = None
    counted: bool = False
    relaying: bool = False
    # The Responses API: a stored-response call's operation (None: a create), the response
    # it is about (for a create: the one it made), its owner record, the parsed answer.
    op: StoredOp | None = None
    response_id: str | None = None
    owner: ResponseOwner | None = None
    opened: bool = False  # this create recorded its response as still running upstream
    payload: Any = None

    @property
    def action(self) -> str:
        return STORED_OPS[self.op].action if self.op is not None else ACTIONS[self.api]

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
    return await open_call_as(call, await caller_view(call.ctx, token), raw)


async def open_call_as(call: Call, view: CallerView, raw: bytes) -> Prepared:
    """`open_call` for a caller already known: an eval run's key, in a worker."""
    ctx = call.ctx
    call.view = view
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
    if isinstance(previous := body.get("previous_response_id"), str):
        await _owned(call, previous, param="previous_response_id")
    await admit(call, prepared)
    await reserve_budget(call, prepared)
    await scan_request(ctx.settings, prepared, policy, len(raw))
    return prepared


async def open_stored(
    call: Call, token: str, op: StoredOp, response_id: str, query: list[tuple[str, str]]
) -> Prepared:
    """A stored response's call: the caller, the response's owner (another org's response is
    unknown, as is a malformed id), the rate limit; raises the error that refuses it."""
    call.op, call.response_id = op, response_id
    call.view = await caller_view(call.ctx, token)
    owner = call.owner = await _owned(call, response_id)
    call.requested = owner.model
    passed = stored_query(op, query)
    prepared = call.prepared = Prepared(
        api="responses",
        body={},
        model=owner.model,
        stream=streams(op, passed),
        client_wants_usage=True,
        output_limit=0,
        choices=1,
        method=STORED_OPS[op].method,
        path=stored_path(op, response_id),
        query=passed or None,
    )
    await admit(call, prepared)
    if owner.open and owner.budget is not None:  # its create's reservation covers its usage
        call.background = budget_charges.Reservation.from_json(owner.budget)
    elif owner.open:  # it may settle a background response's usage: the budget counts it
        await reserve_budget(call, prepared)
    return prepared


def response_not_found(response_id: str, param: str | None = None) -> NotFound:
    if param == "previous_response_id":
        message = f"Previous response with id '{response_id}' not found."
    else:
        message = f"Response with id '{response_id}' not found."
    return NotFound(message, param=param, code="response_not_found")


async def _owned(call: Call, response_id: str, param: str | None = None) -> ResponseOwner:
    """The owner record of a response of the caller's org; NotFound for any other id."""
    assert call.view is not None
    owner = None
    if is_valid("response", response_id):
        owner = await call.ctx.store.responses.owner(response_id)
    if owner is None or owner.org_id != call.view.org.id:
        raise response_not_found(response_id, param)
    return owner


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
        prepared.model,
        texts,
        prepared.output_limit,
        prepared.choices,
        call.ctx.prices,
        token_ids=prepared.token_ids,
        unseen_context=isinstance(prepared.body.get("previous_response_id"), str),
    )
    org_id, key_id = call.view.org.id, call.view.key.id
    # a background response's reservation is handed to its record, to settle wherever it ends
    lease = prepared.body.get("background") is not True
    call.budget = await budget_charges.reserve(
        call.ctx, org_id, budgets, key_id, "inference", cost, lease=lease
    )


def _settlements(
    call: Call, usage: Usage | None
) -> tuple[tuple[budget_charges.Reservation, int], ...]:
    """The call's reservations, each with what it really cost (written with its usage)."""
    spent = 0
    if usage is not None and call.prepared is not None:
        spent = cost_nanos(call.ctx, call.prepared.model, usage)
    found = []
    if call.counted and call.background is not None:
        found.append((call.background, spent))
        call.background, spent = None, 0
    if call.budget is not None:
        found.append((call.budget, spent))
        call.budget = None
    return tuple(found)


def _upstream_error(error: UpstreamError) -> TunegateError:
    """The upstream's own rate limit reaches the client as one (with its Retry-After)."""
    if isinstance(error, UpstreamRejected) and error.status == 429:
        return RateLimited(error.message, retry_after=error.retry_after or 1.0, code=error.code)
    return error


async def complete(call: Call) -> Completion:
    prepared = call.prepared
    assert prepared is not None
    body = None if call.op is not None else prepared.body
    try:
        completion = await call.ctx.upstream.forward(
            prepared.method, prepared.path, body, prepared.query
        )
    except UpstreamError as error:
        raise _upstream_error(error) from error
    if call.api == "responses":
        await _keep_state(call, completion)
    return completion


async def _keep_state(call: Call, completion: Completion) -> None:
    """Before the reply: the owner of a response the upstream now stores, and the end of one
    it deleted."""
    assert call.prepared is not None
    if call.op == "delete" and call.response_id is not None:
        await call.ctx.store.responses.forget(call.response_id)
    elif call.op is None and will_store(call.prepared.body):
        call.payload = _parsed(completion.content)
        if (found := response_id_of(call.payload)) is not None:
            await _claim(call, found, still_open=is_open(call.payload))


async def _claim(call: Call, response_id: str, *, still_open: bool) -> None:
    assert call.view is not None and call.prepared is not None
    call.response_id, call.opened = response_id, still_open
    handed = call.budget if still_open else None  # held until its usage is counted
    kept = handed.to_json() if handed is not None else None
    view, model = call.view, call.prepared.model
    owner = ResponseOwner(view.org.id, view.key.id, model, still_open, kept)
    await call.ctx.store.responses.claim(response_id, owner)
    if handed is not None:
        call.background, call.budget = handed, None


def _parsed(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


async def finish_completion(call: Call, completion: Completion) -> None:
    """After the reply went out: usage, rate-limit correction and audit."""
    assert call.prepared is not None and call.view is not None
    payload = call.payload if call.payload is not None else _parsed(completion.content)
    usage = await _usage(call, payload)
    texts = completion_texts(payload, call.api) if _logs_content(call) and not call.op else []
    await _finish(call, usage, completion.status, texts)


async def _usage(call: Call, payload: Any) -> Usage | None:
    """What a finished call used: its answer's usage, or an estimate of it. A stored-response
    call uses nothing, unless it is the first to see a background response finished: then it
    counts that response's usage. So does a create, unless its response is still running."""
    assert call.prepared is not None
    shape = SPECS[call.api].usage
    if call.op is not None:
        if call.owner is None or not call.owner.open or is_open(payload):
            return None
        if response_id_of(payload) is None:  # not the response itself (its input items)
            return None
        # ended: what it used (a response cancelled before it ran reports none)
        return await _settled(call, usage_of(payload, shape) or Usage(0, 0))
    if call.opened and is_open(payload):
        return Usage(0, 0)
    if (usage := usage_of(payload, shape)) is not None:
        return usage
    if shape == "none":  # moderations report no usage: their input, estimated
        texts = prompt_texts(call.prepared.body, call.api)
        return Usage(estimate_tokens(texts, 0, 1), 0, estimated=True)
    return Usage(call.reserved_tokens, 0, estimated=True)


async def _settled(call: Call, usage: Usage | None) -> Usage | None:
    """A background response's usage, for the one call that settles it (None for the rest)."""
    if usage is None or call.response_id is None:
        return None
    if not await call.ctx.store.responses.settle(call.response_id):
        return None
    call.counted = True
    return usage


async def open_stream(call: Call) -> CompletionStream:
    prepared = call.prepared
    assert prepared is not None
    body = None if call.op is not None else prepared.body
    try:
        return await call.ctx.upstream.forward_stream(
            prepared.method, prepared.path, body, prepared.query
        )
    except UpstreamError as error:
        raise _upstream_error(error) from error


async def relay(call: Call, upstream: CompletionStream) -> AsyncGenerator[bytes, None]:
    """The client's stream. Closing it early (a client that left) closes the upstream's."""
    assert call.prepared is not None
    claim = call.api == "responses" and call.op is None and will_store(call.prepared.body)
    sse = SseRelay(
        call.api,
        forward_usage=call.prepared.client_wants_usage,
        collect_text=_logs_content(call) and call.op is None,
        want_id=claim,
    )
    status, error = DISCONNECTED, None
    call.relaying = True
    try:
        async for chunk in upstream:
            out = sse.feed(chunk)
            if claim and sse.response_id is not None:
                claim = False  # recorded before the client sees the id
                background = call.prepared.body.get("background") is True
                await _claim(call, sse.response_id, still_open=background)
            if out:
                yield out
        if tail := sse.flush():
            yield tail
        status = upstream.status
    except (UpstreamError, Unavailable) as failure:
        status, error = 502 if isinstance(failure, UpstreamError) else 503, failure
        yield b"data: " + orjson.dumps({"error": _error_body(failure)}) + b"\n\n"
    finally:
        with anyio.CancelScope(shield=True):
            await upstream.aclose()
            usage = await _streamed_usage(call, sse)
            await _finish(call, usage, status, sse.completions(), error)


async def _streamed_usage(call: Call, sse: SseRelay) -> Usage | None:
    """A stream's usage (estimated when it ended early); a background response's is counted
    once, by whichever call sees it finish first."""
    if call.op is not None:
        if call.owner is None or not call.owner.open:
            return None
        return await _settled(call, sse.usage)
    if call.opened:
        if sse.usage is None:  # still running upstream: a later call counts it
            return Usage(0, 0)
        return await _settled(call, sse.usage) or Usage(0, 0)
    return sse.usage or sse.estimated_usage(call.reserved_tokens)


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
    usage: Usage | None,
    status: int,
    completions: list[str],
    error: TunegateError | None = None,
) -> None:
    assert call.prepared is not None and call.view is not None
    policy = call.view.org.policy
    details = _details(call)
    if usage is not None:
        details |= {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        }
        if usage.cached_tokens:
            details["cached_tokens"] = usage.cached_tokens
        if usage.reasoning_tokens:
            details["reasoning_tokens"] = usage.reasoning_tokens
        if usage.estimated:
            details["usage_estimated"] = True
    if error is not None:
        details["error"] = error.code
    content = None
    if call.op is None:
        content = logged_content(policy, call.api, call.prepared.body, completions)
    if content is not None:
        details["content"] = content
    await _record(call, usage, status, details)


def _details(call: Call) -> dict[str, Any]:
    details: dict[str, Any] = {"model": call.requested}
    if call.response_id is not None:
        details["response_id"] = call.response_id
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
        action=call.action,
        model=call.prepared.model if call.prepared is not None else None,
        usage=usage,
        reserved_tokens=call.reserved_tokens,
        tokens_per_minute=limits.tokens_per_minute if limits is not None else None,
        request_id=call.request_id,
        client=call.client,
        status=status,
        details=details,
        endpoint=call.api,
        settlements=_settlements(call, usage),
    )
    try:
        await record_call(call.ctx, metered)
    except Exception:  # the reply is decided already: nothing to tell the client, so log loudly
        log.error("call_record_failed", request_id=call.request_id, exc_info=True)
