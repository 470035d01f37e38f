"""Signing in and out of the console. The key is read from a POSTed form, exchanged for a session,
and never echoed, stored in the browser or put in a URL. Both are audited by the middleware
(`console.sign_in`, `console.sign_out`) like every other call that changes something."""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect, Template

from service.domain.tenancy.sessions import csrf_matches
from service.errors import AuthenticationFailed
from service.http.auth import context_of
from service.http.console.session import (
    COOKIE,
    CSRF_FIELD,
    EXCEPTION_HANDLERS,
    SIGN_IN,
    checked_form,
    is_https,
    page,
    require_session,
    set_session_cookie,
)
from service.operations.tenancy import sessions

PRE_SESSION = "tg_console_signin"


class SignInController(Controller):
    path = "/console"
    include_in_schema = False
    exception_handlers = EXCEPTION_HANDLERS

    @get("/sign-in", opt={"audit": "never"})
    async def sign_in_form(self, request: Request[Any, Any, Any]) -> Template:
        token = secrets.token_urlsafe(32)
        response = page(request, "sign_in.html", csrf=token, error=None)
        response.set_cookie(
            PRE_SESSION,
            token,
            path=SIGN_IN,
            httponly=True,
            samesite="strict",
            secure=is_https(request),
        )
        return response

    @post("/sign-in", operation_id="console.sign_in", status_code=303)
    async def sign_in(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        if not csrf_matches(form.get(CSRF_FIELD), request.cookies.get(PRE_SESSION, "")):
            return page(
                request,
                "sign_in.html",
                status=403,
                csrf=request.cookies.get(PRE_SESSION, ""),
                error="The sign-in form expired; try again.",
            )
        try:
            session = await sessions.sign_in(context_of(request), str(form.get("key") or ""))
        except AuthenticationFailed as error:
            request.state.audit_org_id = error.extra.get("org_id")
            return page(
                request,
                "sign_in.html",
                status=401,
                csrf=form.get(CSRF_FIELD),
                error="That key or token was not accepted.",
            )
        request.state.principal = session.principal
        response: Response[Any] = Redirect("/console", status_code=303)
        set_session_cookie(response, request, session.id)
        response.delete_cookie(PRE_SESSION, path=SIGN_IN)
        return response

    @post("/sign-out", operation_id="console.sign_out", guards=[require_session], status_code=303)
    async def sign_out(self, request: Request[Any, Any, Any]) -> Response[Any]:
        await checked_form(request)
        await sessions.sign_out(context_of(request), request.cookies[COOKIE])
        response: Response[Any] = Redirect(SIGN_IN, status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response
