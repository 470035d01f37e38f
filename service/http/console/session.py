"""The console's session cookie, its guard, CSRF checks, and HTML pages for errors.

The cookie holds only an opaque session id (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS
or behind a proxy that says so). The guard turns it into the same `Principal` an API key gives and
checks the same capabilities the API's guard checks, so a session can do what its key's role can.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from service import errors
from service.domain.tenancy.access import Capability, role_allows
from service.domain.tenancy.sessions import ABSOLUTE_SECONDS, ConsoleSession, csrf_matches
from service.http.auth import context_of
from service.http.errors import handle_unexpected, status_and_type
from service.operations.tenancy import sessions

COOKIE = "tg_console"
CSRF_FIELD = "csrf_token"
SIGN_IN = "/console/sign-in"


class NotSignedIn(Exception):
    """No live session: the page answers with a redirect to the sign-in page."""


def is_https(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    forwarded = connection.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return connection.url.scheme == "https" or forwarded == "https"


def set_session_cookie(
    response: Response[Any], request: Request[Any, Any, Any], session_id: str
) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
        max_age=ABSOLUTE_SECONDS,
    )


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ConsoleSession:
    session: ConsoleSession = connection.state.console_session
    return session


async def require_session(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    session_id = connection.cookies.get(COOKIE)
    session = await sessions.resume(context_of(connection), session_id) if session_id else None
    if session is None:
        raise NotSignedIn
    connection.state.console_session = session
    connection.state.principal = principal = session.principal
    if handler.opt.get("operator") and not principal.is_operator:
        raise errors.PermissionDenied("Only the gateway's operator may open this page.")
    if handler.opt.get("org") and principal.org_id is None:
        raise errors.PermissionDenied("Sign in with an org key to see an org's pages.")
    capability: Capability | None = handler.opt.get("capability")
    if capability is not None and (
        principal.is_operator or not role_allows(principal.role, capability)  # type: ignore[arg-type]
    ):
        raise errors.PermissionDenied(
            f"A key with role '{principal.role}' may not do this ({capability.value})."
        )


def check_csrf(request: Request[Any, Any, Any], presented: str | None) -> None:
    if not csrf_matches(presented, session_of(request).csrf):
        raise errors.PermissionDenied("The form's CSRF token is missing or wrong.", code="csrf")


async def checked_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The posted form's fields, once its CSRF token matches the session's."""
    form = await request.form()
    fields = {key: str(value) for key, value in form.items()}
    check_csrf(request, fields.get(CSRF_FIELD))
    return fields


def page(request: Request[Any, Any, Any], name: str, status: int = 200, **context: Any) -> Template:
    session = getattr(request.state, "console_session", None)
    return Template(
        template_name=name,
        context={"session": session, "path": request.url.path, **context},
        status_code=status,
        headers={"cache-control": "no-store", "x-frame-options": "DENY"},
    )


def on_not_signed_in(_request: Request[Any, Any, Any], _exc: Exception) -> Response[Any]:
    return Redirect(SIGN_IN, status_code=303)


def on_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, errors.TunegateError):
        status, _ = status_and_type(exc)
        message = exc.message
    elif isinstance(exc, HTTPException) and exc.status_code < 500:
        status, message = exc.status_code, str(exc.detail)
    else:
        handle_unexpected(request, exc)
        status, message = 500, "The gateway hit an internal error."
    return page(request, "error.html", status=status, status_code=status, message=message)  # type: ignore[return-value]


EXCEPTION_HANDLERS: dict[type[Exception], Any] = {
    NotSignedIn: on_not_signed_in,
    errors.TunegateError: on_error,
    HTTPException: on_error,
    Exception: on_error,
}


PageNo = Annotated[int | None, QueryParameter(name="page", ge=1)]  # a console list's page, from 1


def paged(items: list[Any], number: int | None, size: int = 50) -> dict[str, Any]:
    """One page of a list the operation returns whole: its items and the neighbours' numbers."""
    number = max(1, number or 1)
    start = (number - 1) * size
    more = len(items) > start + size
    return {
        "items": items[start : start + size],
        "prev_page": number - 1 if number > 1 else None,
        "next_page": number + 1 if more else None,
    }
