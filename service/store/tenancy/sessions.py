"""Console sessions in Redis: one JSON value per session id, expiring with the session."""

from __future__ import annotations

from service.domain.tenancy.sessions import ConsoleSession
from service.store import keys
from service.store.base import Repository


class SessionRepository(Repository):
    async def put(self, session: ConsoleSession, ttl_seconds: int) -> None:
        await self.redis.set(
            keys.console_session(session.id), session.model_dump_json(), ex=max(1, ttl_seconds)
        )

    async def get(self, session_id: str) -> ConsoleSession | None:
        raw = await self.redis.get(keys.console_session(session_id))
        return ConsoleSession.model_validate_json(raw) if raw else None

    async def delete(self, session_id: str) -> None:
        await self.redis.delete(keys.console_session(session_id))
