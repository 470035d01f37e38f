"""Console sign-in and sign-out: an org key or the operator token exchanged for a session.

A session acts as the principal its key names, checked again on every request: a key revoked
after sign-in ends its sessions at their next use.
"""

from __future__ import annotations

import time

from service.domain.tenancy.access import OPERATOR, Principal, token_matches
from service.domain.tenancy.sessions import ConsoleSession, new_session, seconds_left
from service.errors import AuthenticationFailed
from service.operations.context import Context
from service.operations.tenancy.orgs import authenticate


async def principal_for(ctx: Context, secret: str) -> Principal:
    expected = ctx.settings.admin_token
    if expected is not None and token_matches(secret, expected.get_secret_value()):
        return OPERATOR
    return await authenticate(ctx.store, secret)


async def sign_in(ctx: Context, secret: str) -> ConsoleSession:
    principal = await principal_for(ctx, secret.strip())
    session = new_session(principal, time.time())
    await ctx.store.sessions.put(session, seconds_left(session, session.created_at))
    return session


async def resume(ctx: Context, session_id: str) -> ConsoleSession | None:
    """The live session under this id (its idle clock restarted), or None."""
    session = await ctx.store.sessions.get(session_id)
    if session is None or not await _key_still_valid(ctx, session):
        return None
    session.last_seen = time.time()
    left = seconds_left(session, session.last_seen)
    if left <= 0:
        await ctx.store.sessions.delete(session_id)
        return None
    await ctx.store.sessions.put(session, left)
    return session


async def _key_still_valid(ctx: Context, session: ConsoleSession) -> bool:
    if session.key_id is None:
        return session.role == "operator"
    record = await ctx.store.tenancy.get_key(session.key_id)
    return record is not None and record.revoked_at is None and record.org_id == session.org_id


async def sign_out(ctx: Context, session_id: str) -> None:
    await ctx.store.sessions.delete(session_id)


def not_signed_in() -> AuthenticationFailed:
    return AuthenticationFailed("Sign in to use the console.", code="no_session")
