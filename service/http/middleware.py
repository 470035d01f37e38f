"""The gateway's ASGI middleware: request ids, access logs, metrics, and the audit hook.

Every request gets an `X-Request-ID` (the caller's, if it is sane, else a new one) that is echoed
back and bound into every log line. Every mutating call and every denied call is audited here,
once, when the response starts — handlers only add the resource id and details through
`request.state`. Routes that audit themselves (streams that know their token usage only at the
end) opt out with `opt={"audit": "self"}`.

A record goes to the stream of the org that made the call, or that the operator acted on (an org
the path names, unless the call found nothing there). A caller who did not authenticate names
no stream: whatever the path says, its record goes to the gateway's own. A request no route
matches is not recorded at all, only counted (`tunegate_http_unmatched_requests_total`).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.domain.tenancy.audit import outcome_for_status
from service.logging import get_logger
from service.operations.context import Context
from service.operations.tenancy.audit import record_audit

from .metrics import Metrics

log = get_logger("tunegate.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DENIED = frozenset({401, 403, 429})


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID.match(candidate):
                return candidate
    return "req_" + uuid.uuid4().hex


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _should_audit(scope: Scope, status: int) -> bool:
    handler = scope.get("route_handler")
    if handler is None or handler.opt.get("audit") in ("self", "never"):
        return False
    return scope["method"] in _MUTATING or status in _DENIED


def _audit_org(scope: Scope, status: int) -> str | None:
    """The org whose stream gets the record; None: the caller's own org, else the gateway's."""
    state: dict[str, Any] = scope["state"]
    if state.get("audit_org_id"):  # set by a handler, or by auth for a real but revoked key
        return str(state["audit_org_id"])
    principal = state.get("principal")
    if principal is not None and principal.is_operator and status != 404:
        return (scope.get("path_params") or {}).get("org_id")
    return None


def _action(scope: Scope) -> str:
    handler = scope.get("route_handler")
    operation_id = getattr(handler, "operation_id", None)
    if isinstance(operation_id, str):
        return operation_id
    return "http.unmatched"


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, ctx: Context, metrics: Metrics) -> None:
        self.app = app
        self.ctx = ctx
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
                if _should_audit(scope, status):
                    await self._audit(scope, status, request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            self.metrics.observe(route, scope["method"], status, elapsed)
            if scope.get("route_handler") is None:
                self.metrics.unmatched.labels(scope["method"]).inc()
            log.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()

    async def _audit(self, scope: Scope, status: int, request_id: str) -> None:
        state: dict[str, Any] = scope["state"]
        try:
            await record_audit(
                self.ctx.store,
                principal=state.get("principal"),
                action=_action(scope),
                outcome=outcome_for_status(status),
                org_id=_audit_org(scope, status),
                resource_id=state.get("audit_resource_id"),
                request_id=request_id,
                status=status,
                client=_client(scope),
                details=state.get("audit_details"),
            )
        except Exception:  # the response must still go out; the failure is logged loudly
            log.error("audit_write_failed", action=_action(scope), status=status, exc_info=True)
