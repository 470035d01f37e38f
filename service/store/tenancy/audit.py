"""The audit trail: one Redis Stream per org, append-only, read newest first with a cursor.

Stream entry ids are `<ms>-<seq>`, so a time range maps straight onto an id range and the last id
of a page is the cursor for the next one, and retention is `XTRIM MINID` (entries older than a
time go) on every audit stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from service.domain.tenancy.audit import AuditEvent
from service.errors import Unavailable
from service.ids import STREAM_ID_PART_MAX
from service.store import keys
from service.store.base import UNREACHABLE, Repository

SCAN_BATCH = 500
SCAN_LIMIT = 20_000
FIRST_STREAM_ID = "0-0"
GATEWAY_STREAM = "_gateway"  # `keys.audit(None)`: what no org owns


@dataclass(frozen=True, slots=True)
class AuditFilter:
    since: float | None = None
    until: float | None = None
    action: str | None = None
    key_id: str | None = None

    def matches(self, event: AuditEvent) -> bool:
        if self.action and not (
            event.action == self.action or event.action.startswith(self.action + ".")
        ):
            return False
        return not (self.key_id and event.key_id != self.key_id)

    def id_bounds(self) -> tuple[str, str]:
        low = f"{_stream_ms(self.since)}-0" if self.since is not None else "-"
        high = f"{_stream_ms(self.until)}-{STREAM_ID_PART_MAX}" if self.until is not None else "+"
        return low, high


def _stream_ms(seconds: float) -> int:
    """Unix seconds as a stream id's milliseconds, clamped to what a stream id can hold (a far
    future `until` means no upper bound, not an invalid id)."""
    return int(min(max(seconds, 0.0) * 1000, STREAM_ID_PART_MAX))


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    next_cursor: str | None


def _decode(entry_id: str, fields: dict[str, str]) -> AuditEvent:
    event = AuditEvent.model_validate_json(fields["e"])
    event.id = entry_id
    return event


def _exclusive(entry_id: str) -> str:
    return "(" + entry_id


class AuditRepository(Repository):
    async def append(self, event: AuditEvent) -> str:
        payload = event.model_dump_json(exclude={"id"})
        return str(await self.redis.xadd(keys.audit(event.org_id), {"e": payload}))

    async def append_many(self, events: list[AuditEvent]) -> list[str]:
        """Append in one round trip; the ids in the order of `events`."""
        if not events:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(keys.audit(event.org_id), {"e": event.model_dump_json(exclude={"id"})})
            return [str(entry_id) for entry_id in await pipe.execute()]

    async def page(
        self, org_id: str, filters: AuditFilter, *, cursor: str | None, limit: int
    ) -> AuditPage:
        """Newest first. `next_cursor` is set when more entries may match."""
        low, high = filters.id_bounds()
        if cursor == FIRST_STREAM_ID:  # nothing comes before it (Redis refuses the range)
            return AuditPage([], None)
        if cursor:
            high = _exclusive(cursor)
        found: list[AuditEvent] = []
        scanned = 0
        while scanned < SCAN_LIMIT:
            batch = await self.redis.xrevrange(keys.audit(org_id), high, low, count=SCAN_BATCH)
            for entry_id, fields in batch:
                event = _decode(entry_id, fields)
                if filters.matches(event):
                    found.append(event)
                    if len(found) == limit:
                        return AuditPage(found, entry_id)
            scanned += len(batch)
            if len(batch) < SCAN_BATCH:
                return AuditPage(found, None)
            high = _exclusive(batch[-1][0])
        return AuditPage(found, high[1:])

    async def trim_before(self, seconds: float) -> dict[str | None, int]:
        """Drop every audit entry older than `seconds` (Unix time); how many went, by org (None:
        the gateway's own stream), for the streams that lost any."""
        pattern = keys.audit("*")
        stream_prefix = pattern[:-1]
        minid = f"{_stream_ms(seconds)}-0"
        removed: dict[str | None, int] = {}
        async for stream in self.redis.scan_iter(match=pattern, _type="stream"):
            count = int(await self.redis.xtrim(stream, minid=minid, approximate=False))
            if count:
                org_id = stream.removeprefix(stream_prefix)
                removed[None if org_id == GATEWAY_STREAM else org_id] = count
        return removed

    async def export(self, org_id: str, filters: AuditFilter) -> AsyncIterator[AuditEvent]:
        """Oldest first, every matching entry, read in batches."""
        low, high = filters.id_bounds()
        while True:
            try:
                batch = await self.redis.xrange(keys.audit(org_id), low, high, count=SCAN_BATCH)
            except UNREACHABLE as error:
                raise Unavailable("The gateway's data store is unavailable.") from error
            for entry_id, fields in batch:
                event = _decode(entry_id, fields)
                if filters.matches(event):
                    yield event
            if len(batch) < SCAN_BATCH:
                return
            low = _exclusive(batch[-1][0])
