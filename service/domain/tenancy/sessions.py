"""Console sessions: who signed in, their CSRF token, and when the session ends.

A session lasts `IDLE_SECONDS` past its last use and never more than `ABSOLUTE_SECONDS` after
sign-in. The key that opened it is never kept, only who it names (org, key id, role).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Literal

from pydantic import BaseModel

from service.domain.tenancy.access import Principal, Role

IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 60 * 60


class ConsoleSession(BaseModel):
    id: str
    org_id: str | None
    key_id: str | None
    role: Role | Literal["operator"]
    csrf: str
    created_at: float
    last_seen: float

    @property
    def principal(self) -> Principal:
        return Principal(org_id=self.org_id, key_id=self.key_id, role=self.role)


def new_session(principal: Principal, now: float) -> ConsoleSession:
    return ConsoleSession(
        id=secrets.token_urlsafe(32),
        org_id=principal.org_id,
        key_id=principal.key_id,
        role=principal.role,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        last_seen=now,
    )


def seconds_left(session: ConsoleSession, now: float) -> int:
    """How long the session may stay stored from `now`; 0 when it has ended."""
    idle_end = session.last_seen + IDLE_SECONDS
    absolute_end = session.created_at + ABSOLUTE_SECONDS
    return max(0, int(min(idle_end, absolute_end) - now))


def csrf_matches(presented: str | None, expected: str) -> bool:
    return bool(presented) and hmac.compare_digest(str(presented).encode(), expected.encode())
