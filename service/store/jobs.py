"""Fine-tuning job records, their events and checkpoints, and the indexes derived from them.

A record is one JSON value; every change goes through `update`, a compare-and-set (WATCH /
MULTI) that also keeps the indexes in step with the record in the same transaction: the org's
FIFO of jobs waiting for a slot, the set of jobs holding one, the due set the workers advance
from, and the upstream id -> job id map that OpenAI's webhooks need. Events are appended in the
same transaction as the record that remembers the last one, so a crash never stores an event
twice. `promote` moves the heads of an org's FIFO into free slots atomically.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel
from redis.exceptions import WatchError

from service.domain.jobs.polling import (
    EVENTS_EVERY_SECONDS,
    TRIAL_EVENTS_EVERY_SECONDS,
    Watched,
    listing_mark,
)
from service.domain.jobs.states import INITIAL_STATE, UPSTREAM, JobState, holds_slot
from service.domain.sweeps.trials import sweep_of
from service.store import keys
from service.store.base import MAX_WRITE_TRIES, Repository, compare_and_set

BATCH_WRITE_TRIES = 3  # then record by record

IDEMPOTENCY_SECONDS = 24 * 3600
PROMOTE_BATCH = 32  # waiting jobs started per transaction
Change = Callable[["JobRecord"], "JobRecord | None"]


class JobRecord(BaseModel):
    id: str
    org_id: str
    key_id: str | None = None
    created_at: int
    seq: float  # creation time to the microsecond: the FIFO order of the org's waiting jobs
    request: dict[str, Any]  # the normalised request (`JobRequest`)
    base_model: str
    seed: int
    state: JobState = INITIAL_STATE
    version: int = 0
    split_files: list[str] = []  # [training, validation] carved out by `validation_split`
    create_attempts: int = 0
    failures: int = 0  # transient failures in a row, for the backoff
    due_at: float | None = None
    poll_delay: float | None = None
    upstream_id: str | None = None
    aliases: dict[str, str] = {}  # upstream ids -> tunegate's, for event messages
    upstream_status: str | None = None
    last_event_id: str | None = None
    events_at: float | None = None  # when the upstream's events were last read
    listed: dict[str, Any] | None = None  # the upstream job as the poll cycle listed it
    controlled_at: float | None = None  # last cancel, pause or resume: older reads are stale
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    budget: dict[str, Any] | None = None  # the budget reservation, settled when it ends
    finished_at: int | None = None
    estimated_finish: int | None = None
    error: dict[str, Any] | None = None
    hyperparameters: dict[str, Any] | None = None
    method: dict[str, Any] | None = None
    result_files: list[str] = []  # upstream ids: read by the gateway, never shown
    pending: list[str] = []  # finishing steps still to run after a terminal state
    eval_template: dict[str, Any] | None = None  # the sampling template of `request.eval_id`
    eval_runs: dict[str, str] = {}  # {"model": run id, "base": run id} once created
    eval_error: dict[str, Any] | None = None  # why the eval runs could not be created
    history: list[dict[str, Any]] = []  # {"state", "at", "poll_delay"}: when the gateway saw it


class JobRepository(Repository):
    # Records

    async def create(self, record: JobRecord, idempotency: tuple[str, str] | None) -> bool:
        """Store a new job; with `(key, fingerprint)`, only if the key is still unused."""
        key = keys.job_idempotency(record.org_id, _digest(idempotency[0])) if idempotency else None
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                if key is not None:
                    await pipe.watch(key)
                    if await pipe.exists(key):
                        return False
                pipe.multi()
                if key is not None and idempotency is not None:
                    claim = {"job_id": record.id, "fingerprint": idempotency[1]}
                    pipe.set(key, orjson.dumps(claim), ex=IDEMPOTENCY_SECONDS)
                pipe.zadd(keys.org_jobs(record.org_id), {record.id: record.seq})
                _write(pipe, None, record)
                await pipe.execute()
            except WatchError:
                return False
        return True

    async def idempotent(self, org_id: str, key: str) -> tuple[str, str] | None:
        """(job id, fingerprint) of the job an `Idempotency-Key` made, if any."""
        raw = await self.redis.get(keys.job_idempotency(org_id, _digest(key)))
        if raw is None:
            return None
        claim = orjson.loads(raw)
        return str(claim["job_id"]), str(claim["fingerprint"])

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self.redis.get(keys.job(job_id))
        return JobRecord.model_validate_json(raw) if raw else None

    async def many(self, job_ids: list[str]) -> list[JobRecord]:
        if not job_ids:
            return []
        raws = await self.redis.mget([keys.job(job_id) for job_id in job_ids])
        return [JobRecord.model_validate_json(raw) for raw in raws if raw]

    async def list_ids(self, org_id: str) -> list[str]:
        """Newest first."""
        return list(await self.redis.zrevrange(keys.org_jobs(org_id), 0, -1))

    async def page_ids(self, org_id: str, after: str | None, limit: int) -> tuple[list[str], bool]:
        """A page of the org's job ids, newest first, after the job `after`; and whether more
        follow."""
        start = 0
        if after is not None:
            rank = await self.redis.zrevrank(keys.org_jobs(org_id), after)
            if rank is None:
                return [], False
            start = rank + 1
        ids = list(await self.redis.zrevrange(keys.org_jobs(org_id), start, start + limit))
        return ids[:limit], len(ids) > limit

    async def update(
        self,
        job_id: str,
        change: Change,
        *,
        events: list[dict[str, Any]] | None = None,
        checkpoints: list[dict[str, Any]] | None = None,
    ) -> JobRecord | None:
        """Apply `change` to the current record and write it (with `events` appended and
        `checkpoints` replaced) unless the record moved meanwhile, then try again. `change`
        returns None to write nothing; the result is the record as stored (None: no such job)."""

        def write(pipe: Any, old: JobRecord, new: JobRecord) -> None:
            new.version = old.version + 1
            _write(pipe, old, new)
            _queue_extras(pipe, job_id, events, checkpoints)

        return await compare_and_set(
            self.redis, keys.job(job_id), JobRecord, change, write, f"Job {job_id}"
        )

    async def update_many(self, changes: dict[str, Change]) -> None:
        """`update` for many jobs in one transaction (no events or checkpoints): a walk that
        sees a burst of changes writes them `UPDATE_BATCH` at a time. When one of the records
        keeps moving, each is updated on its own instead."""
        names = [keys.job(job_id) for job_id in changes]
        for _ in range(BATCH_WRITE_TRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*names)
                    changed = await _changed(pipe, list(changes), changes.__getitem__)
                    _write_changed(pipe, changed)
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        for job_id, change in changes.items():
            await self.update(job_id, change)

    async def promote(self, org_id: str, limit: int | None, start: Change) -> list[JobRecord]:
        """Give free slots to the org's longest-waiting jobs, at most `PROMOTE_BATCH` of them
        (`start` makes each record's change); all of those or none, atomically. A batch keeps
        the transaction small: while jobs join the line, a bigger one would be read again
        after every join."""
        waiting, active = keys.org_jobs_waiting(org_id), keys.org_jobs_active(org_id)
        for _ in range(MAX_WRITE_TRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(waiting, active)
                    free = None if limit is None else limit - int(await pipe.scard(active))
                    if free is not None and free <= 0:
                        return []
                    count = PROMOTE_BATCH if free is None else min(free, PROMOTE_BATCH)
                    heads = list(await pipe.zrange(waiting, 0, count - 1))
                    if not heads:
                        return []
                    await pipe.watch(*[keys.job(job_id) for job_id in heads])
                    started = await _changed(pipe, heads, lambda _: start)
                    _write_changed(pipe, started)
                    await pipe.execute()
                    return [new for _, new in started]
                except WatchError:
                    continue
        return []

    async def steps_done(self, job_id: str) -> set[str]:
        """The finishing steps marked done and not crossed off yet."""
        return set(await self.redis.smembers(keys.job_steps_done(job_id)))

    async def step_done(self, job_id: str, step: str) -> None:
        """Mark a finishing step done (the set goes when the record crosses the last one off)."""
        await self.redis.sadd(keys.job_steps_done(job_id), step)

    async def waiting_count(self, org_id: str) -> int:
        return int(await self.redis.zcard(keys.org_jobs_waiting(org_id)))

    # Scheduling

    async def due(self, until: float, limit: int) -> list[str]:
        """Jobs due by `until`, most overdue first."""
        found = await self.redis.zrangebyscore(keys.jobs_due(), "-inf", until, start=0, num=limit)
        return list(found)

    async def earliest_due(self) -> float | None:
        found = await self.redis.zrange(keys.jobs_due(), 0, 0, withscores=True)
        return float(found[0][1]) if found else None

    async def start_draining(self, name: str, until: float, now: float) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(keys.jobs_drainers(), "-inf", now)
            pipe.zadd(keys.jobs_drainers(), {name: until})
            await pipe.execute()

    async def stop_draining(self, name: str) -> None:
        await self.redis.zrem(keys.jobs_drainers(), name)

    async def drained_until(self) -> float:
        """Until when a running task takes every job that falls due (0: none runs)."""
        found = await self.redis.zrevrange(keys.jobs_drainers(), 0, 0, withscores=True)
        return float(found[0][1]) if found else 0.0

    async def watched(self) -> dict[str, Watched]:
        """Every job the upstream holds, by upstream id (the poll cycle's one read)."""
        raw = await self.redis.hgetall(keys.jobs_watched())
        return {upstream_id: Watched(*orjson.loads(entry)) for upstream_id, entry in raw.items()}

    async def watched_count(self) -> int:
        return int(await self.redis.hlen(keys.jobs_watched()))

    async def claim_cycle(self, owner: str, seconds: float) -> bool:
        """Hold the poll cycle's lease: one worker walks the upstream's list at a time."""
        lease = keys.jobs_poll_cycle()
        return bool(await self.redis.set(lease, owner, nx=True, px=int(seconds * 1000)))

    async def end_cycle(self, owner: str, gap_seconds: float) -> None:
        """Keep the lease for `gap_seconds` more, so that no other walk starts at once."""
        lease = keys.jobs_poll_cycle()
        if await self.redis.get(lease) == owner:
            await self.redis.pexpire(lease, max(1, int(gap_seconds * 1000)))

    async def claim_cycle_tick(self, tick: int, interval: float) -> bool:
        """Become the one worker process that walks for this tick of the cycle's clock."""
        key = keys.jobs_cycle_tick(interval, tick)
        return bool(await self.redis.set(key, 1, nx=True, px=int(interval * 2000)))

    async def job_for_upstream(self, upstream_id: str) -> str | None:
        value: str | None = await self.redis.hget(keys.jobs_by_upstream(), upstream_id)
        return value

    # Events, checkpoints, metrics

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        """Oldest first."""
        return [
            orjson.loads(raw) for raw in await self.redis.lrange(keys.job_events(job_id), 0, -1)
        ]

    async def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        """Newest first, as the upstream lists them."""
        raw = await self.redis.get(keys.job_checkpoints(job_id))
        return list(orjson.loads(raw)) if raw else []

    async def put_metrics(self, job_id: str, rows: list[dict[str, Any]]) -> None:
        await self.redis.set(keys.job_metrics(job_id), orjson.dumps(rows))

    async def metrics(self, job_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.get(keys.job_metrics(job_id))
        return list(orjson.loads(raw)) if raw else []


def _digest(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


async def _changed(
    pipe: Any, job_ids: list[str], change_of: Callable[[str], Change]
) -> list[tuple[JobRecord, JobRecord]]:
    """(as stored, as changed) for each of the watched records its change applies to."""
    raws = await pipe.mget([keys.job(job_id) for job_id in job_ids])
    changed = []
    for job_id, raw in zip(job_ids, raws, strict=True):
        new = change_of(job_id)(JobRecord.model_validate_json(raw)) if raw else None
        if new is not None:
            changed.append((JobRecord.model_validate_json(raw), new))
    return changed


def _write_changed(pipe: Any, changed: list[tuple[JobRecord, JobRecord]]) -> None:
    """Queue every changed record in the transaction, each with its version bumped."""
    pipe.multi()
    for old, new in changed:
        new.version = old.version + 1
        _write(pipe, old, new)


def _write(pipe: Any, old: JobRecord | None, new: JobRecord) -> None:
    """Queue the record and every index that follows from it (only those that changed)."""
    pipe.set(keys.job(new.id), new.model_dump_json())
    was_waiting = old is not None and old.state == JobState.WAITING_SLOT
    if (new.state == JobState.WAITING_SLOT) != was_waiting:
        if was_waiting:
            pipe.zrem(keys.org_jobs_waiting(new.org_id), new.id)
        else:
            pipe.zadd(keys.org_jobs_waiting(new.org_id), {new.id: new.seq})
    held = old is not None and holds_slot(old.state)
    if holds_slot(new.state) != held:
        if held:
            pipe.srem(keys.org_jobs_active(new.org_id), new.id)
        else:
            pipe.sadd(keys.org_jobs_active(new.org_id), new.id)
    if new.due_at is None:
        if old is None or old.due_at is not None:
            pipe.zrem(keys.jobs_due(), new.id)
    elif old is None or old.due_at != new.due_at:
        pipe.zadd(keys.jobs_due(), {new.id: new.due_at})
    if new.upstream_id and (old is None or old.upstream_id != new.upstream_id):
        pipe.hset(keys.jobs_by_upstream(), new.upstream_id, new.id)
    if old is not None and old.pending and not new.pending:
        pipe.delete(keys.job_steps_done(new.id))
    _write_watched(pipe, old, new)


def _watched_entry(record: JobRecord | None) -> bytes | None:
    if record is None or record.upstream_id is None or record.state not in UPSTREAM:
        return None
    mark = listing_mark(record.upstream_status, record.fine_tuned_model, record.trained_tokens)
    every = EVENTS_EVERY_SECONDS
    if sweep_of(record.request.get("metadata")) is not None:
        every = TRIAL_EVENTS_EVERY_SECONDS  # its sweep's early stopping reads the metrics
    entry = [record.id, record.org_id, mark, record.events_at or 0.0, record.created_at, every]
    return orjson.dumps(entry)


def _write_watched(pipe: Any, old: JobRecord | None, new: JobRecord) -> None:
    """The poll cycle's index: a job is watched while the upstream holds it."""
    before, after = _watched_entry(old), _watched_entry(new)
    if after is not None and after != before:
        pipe.hset(keys.jobs_watched(), new.upstream_id, after)
    elif after is None and before is not None and old is not None:
        pipe.hdel(keys.jobs_watched(), old.upstream_id)


def _queue_extras(
    pipe: Any,
    job_id: str,
    events: list[dict[str, Any]] | None,
    checkpoints: list[dict[str, Any]] | None,
) -> None:
    if events:
        pipe.rpush(keys.job_events(job_id), *[orjson.dumps(event) for event in events])
    if checkpoints is not None:
        pipe.set(keys.job_checkpoints(job_id), orjson.dumps(checkpoints))
