"""Who is calling, and may they: the operator token guard and the org-key guard.

Org routes declare what they need with `opt={"capability": Capability.X}`; one guard
authenticates the bearer key, checks the role, and leaves the principal on `request.state`.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from service.domain.tenancy.access import (
    OPERATOR,
    Capability,
    Principal,
    role_allows,
    token_matches,
)
from service.errors import AuthenticationFailed, PermissionDenied
from service.operations.context import Context
from service.operations.tenancy.orgs import authenticate


def context_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Context:
    ctx: Context = connection.app.state.ctx
    return ctx


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    return token.strip()


async def require_operator(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    token = bearer_token(connection)
    expected = context_of(connection).settings.admin_token
    if expected is None or not token_matches(token, expected.get_secret_value()):
        raise AuthenticationFailed("Incorrect admin token provided.")
    connection.state.principal = OPERATOR


async def require_org_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    ctx = context_of(connection)
    try:
        principal = await authenticate(ctx.store, bearer_token(connection))
    except AuthenticationFailed as error:
        connection.state.audit_org_id = error.extra.get("org_id")
        raise
    connection.state.principal = principal
    capability: Capability | None = handler.opt.get("capability")
    if capability is not None and not role_allows(principal.role, capability):  # type: ignore[arg-type]
        raise PermissionDenied(
            f"A key with role '{principal.role}' may not do this ({capability.value})."
        )


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal: Principal = connection.state.principal
    return principal
