"""Who owns each stored Responses API response, so another org's id is answered as unknown.

One hash per response id the upstream keeps: its org, the key that made it and the model it
routed to, and `open` while it still runs upstream (a `background` response whose usage is not
counted yet), with the budget reservation its create handed over, if any (the call that counts
its usage settles it). Kept as long as OpenAI keeps a stored response (30 days), removed when
the response is deleted through the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from service.store import keys
from service.store.base import Repository

RETENTION_SECONDS = 30 * 86_400


@dataclass(frozen=True, slots=True)
class ResponseOwner:
    org_id: str
    key_id: str
    model: str
    open: bool = False
    budget: dict[str, Any] | None = None  # while open: the reservation that covers its usage


class ResponseRepository(Repository):
    async def claim(self, response_id: str, owner: ResponseOwner) -> None:
        """Record the owner of a response the upstream just made (its first and only owner)."""
        name = keys.response(response_id)
        fields = {"org": owner.org_id, "key": owner.key_id, "model": owner.model}
        if owner.open:
            fields["open"] = "1"
            if owner.budget is not None:
                fields["budget"] = orjson.dumps(owner.budget).decode()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping=fields)
            pipe.expire(name, RETENTION_SECONDS)
            await pipe.execute()

    async def owner(self, response_id: str) -> ResponseOwner | None:
        found = await self.redis.hgetall(keys.response(response_id))
        if not found.get("org"):
            return None
        budget = found.get("budget")
        return ResponseOwner(
            found["org"],
            found.get("key", ""),
            found.get("model", ""),
            found.get("open") == "1",
            orjson.loads(budget) if budget else None,
        )

    async def settle(self, response_id: str) -> bool:
        """Mark a background response's usage as counted: True for the one caller that does."""
        return bool(await self.redis.hdel(keys.response(response_id), "open", "budget"))

    async def forget(self, response_id: str) -> None:
        await self.redis.delete(keys.response(response_id))
