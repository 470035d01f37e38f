"""The org's upstream copies of dataset bytes, reference-counted, and every upstream file
tunegate made.

One upstream copy per org and content (`upstream_copy`), used by the set of tunegate files that
claimed it (`upstream_copy_users`). Claiming, recording and releasing are Lua scripts, so a claim
and the last user's release never interleave: the copy is forgotten exactly when its last user
goes, and its upstream id moves to the set of files to delete (`upstream_doomed`) in the same
step. An upload is recorded before its call (`upstream_uploading`) and every kept copy is indexed
by upstream id (`upstream_copies`), so the sweeper can tell an upstream file tunegate still uses
from one it made and lost track of.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from service.store import keys
from service.store.base import Repository

CLAIM = """
local id = redis.call('GET', KEYS[1])
if id then redis.call('SADD', KEYS[2], ARGV[1]) end
return id
"""

RECORD = """
local id = redis.call('GET', KEYS[1])
if not id then
  id = ARGV[2]
  redis.call('SET', KEYS[1], id)
  redis.call('HSET', KEYS[3], id, ARGV[3])
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return id
"""

RELEASE = """
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SCARD', KEYS[2]) > 0 then return false end
local id = redis.call('GET', KEYS[1])
if not id then return false end
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[3], id)
redis.call('SADD', KEYS[4], id)
return id
"""

FORGET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""


def _owner(org_id: str, sha256: str) -> str:
    return f"{org_id}|{sha256}"


class CopyRepository(Repository):
    def __init__(self, redis: Redis) -> None:
        super().__init__(redis)
        self._claim: AsyncScript = redis.register_script(CLAIM)
        self._record: AsyncScript = redis.register_script(RECORD)
        self._release: AsyncScript = redis.register_script(RELEASE)
        self._forget: AsyncScript = redis.register_script(FORGET)

    async def claim(self, org_id: str, sha256: str, file_id: str) -> str | None:
        """Become a user of the org's copy of these bytes; its upstream id, None if none."""
        copy_keys = [keys.upstream_copy(org_id, sha256), keys.upstream_copy_users(org_id, sha256)]
        found: str | None = await self._claim(keys=copy_keys, args=[file_id])
        return found

    async def begin_upload(self, file_id: str, org_id: str) -> None:
        """Record, before the upload call, that an upstream file named after `file_id` may
        appear."""
        await self.redis.hset(keys.upstream_uploading(), file_id, org_id)

    async def record(self, org_id: str, sha256: str, file_id: str, upstream_id: str) -> str:
        """Make `upstream_id` the org's copy of these bytes, used by `file_id`, unless it has
        one already: the copy to use (when not `upstream_id`, that upload is surplus)."""
        copy_keys = [
            keys.upstream_copy(org_id, sha256),
            keys.upstream_copy_users(org_id, sha256),
            keys.upstream_copies(),
            keys.upstream_uploading(),
        ]
        args = [file_id, upstream_id, _owner(org_id, sha256)]
        kept: str = await self._record(keys=copy_keys, args=args)
        return kept

    async def release(self, org_id: str, sha256: str, file_id: str) -> str | None:
        """`file_id` no longer uses the copy; its upstream id when that was the last user (the
        copy is forgotten and doomed: delete it upstream, then call `deleted`)."""
        copy_keys = [
            keys.upstream_copy(org_id, sha256),
            keys.upstream_copy_users(org_id, sha256),
            keys.upstream_copies(),
            keys.upstream_doomed(),
        ]
        last: str | None = await self._release(keys=copy_keys, args=[file_id])
        return last or None

    async def forget(self, org_id: str, sha256: str, upstream_id: str) -> None:
        """The upstream lost this copy: forget it (when it is still the org's copy)."""
        copy_keys = [
            keys.upstream_copy(org_id, sha256),
            keys.upstream_copy_users(org_id, sha256),
            keys.upstream_copies(),
        ]
        await self._forget(keys=copy_keys, args=[upstream_id])

    async def doom(self, upstream_id: str) -> None:
        """An upstream file to delete (a surplus upload)."""
        await self.redis.sadd(keys.upstream_doomed(), upstream_id)

    async def deleted(self, upstream_id: str) -> None:
        await self.redis.srem(keys.upstream_doomed(), upstream_id)

    async def doomed(self) -> list[str]:
        return sorted(await self.redis.smembers(keys.upstream_doomed()))

    async def is_kept(self, upstream_id: str) -> bool:
        return bool(await self.redis.hexists(keys.upstream_copies(), upstream_id))

    async def kept(self) -> dict[str, tuple[str, str]]:
        """Every kept copy: upstream id -> (org id, sha256)."""
        raw = await self.redis.hgetall(keys.upstream_copies())
        kept: dict[str, tuple[str, str]] = {}
        for upstream_id, owner in raw.items():
            org_id, _, sha256 = owner.partition("|")
            kept[upstream_id] = (org_id, sha256)
        return kept

    async def users(self, org_id: str, sha256: str) -> set[str]:
        return set(await self.redis.smembers(keys.upstream_copy_users(org_id, sha256)))

    async def uploading(self) -> dict[str, str]:
        """Uploads recorded and not yet settled: file id -> org id."""
        return dict(await self.redis.hgetall(keys.upstream_uploading()))

    async def end_upload(self, file_id: str) -> None:
        await self.redis.hdel(keys.upstream_uploading(), file_id)
