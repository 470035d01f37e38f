"""RQ: the queues, the JSON serializer, and enqueue helpers (unique ids, delays).

Tasks are referenced by dotted path (`workers.tasks.<name>`) and take ids, never objects. RQ's
API is synchronous; the async service calls these helpers through a worker thread.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

import anyio
import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from service.domain.health import QueueDepth
from service.embedded import connect_embedded, is_embedded_url
from service.errors import Unavailable
from service.store.sentinel import close_sentinels_sync, connect_sentinel_sync, is_sentinel_url

QUEUE_NAME = "tunegate"
TASKS_MODULE = "workers.tasks"
_ACTIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def queue_name(namespace: str = "") -> str:
    """One queue per deployment: a namespaced deployment's workers never take another's jobs."""
    return f"{QUEUE_NAME}-{namespace}" if namespace else QUEUE_NAME


def connect_sync_redis(url: str) -> redis.Redis:
    if is_embedded_url(url):
        return connect_embedded(url)  # type: ignore[no-any-return]
    return _connect(url, socket_timeout=10, socket_connect_timeout=5)


def _connect(url: str, **options: Any) -> redis.Redis:
    if is_sentinel_url(url):
        return connect_sentinel_sync(url, **options)
    return redis.Redis.from_url(url, **options)


def redis_problem(url: str, timeout: float = 5.0) -> str | None:
    """Why the Redis at `url` does not answer a PING, or None when it does."""
    if is_embedded_url(url):
        return None
    try:
        client = _connect(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    except ValueError as error:  # a URL redis-py cannot parse
        return str(error)
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        return str(error) or type(error).__name__
    finally:
        client.close()
        close_sentinels_sync(client)
    return None


class TaskQueue:
    def __init__(self, redis_url: str, namespace: str = "") -> None:
        self.connection = connect_sync_redis(redis_url)
        self.namespace = namespace
        self.name = queue_name(namespace)
        self.queue = Queue(self.name, connection=self.connection, serializer=JSONSerializer)

    def enqueue(
        self,
        task: str,
        *args: Any,
        job_id: str | None = None,
        delay_seconds: float | None = None,
        retries: int = 0,
        timeout: int = 600,
    ) -> str:
        """Queue `workers.tasks.<task>(*args)`. With `job_id`, a still-pending job of that id is
        kept instead of queueing a twin. RQ job ids are global to the Redis, so a namespaced
        deployment's ids carry its namespace."""
        if job_id is not None and self.namespace:
            job_id = f"{self.namespace}-{job_id}"
        if job_id is not None and self._pending(job_id):
            return job_id
        options: dict[str, Any] = {"job_id": job_id, "job_timeout": timeout}
        if retries:
            options["retry"] = Retry(max=retries, interval=[5, 30, 120, 600][:retries] or 5)
        func = f"{TASKS_MODULE}.{task}"
        if delay_seconds:
            job = self.queue.enqueue_in(timedelta(seconds=delay_seconds), func, *args, **options)
        else:
            job = self.queue.enqueue(func, *args, **options)
        return str(job.id)

    async def submit(self, task: str, *args: Any, **options: Any) -> str:
        """`enqueue` from async code, without blocking the event loop."""
        return await anyio.to_thread.run_sync(
            functools.partial(self.enqueue, task, *args, **options)
        )

    def _pending(self, job_id: str) -> bool:
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
        except Exception:
            return False
        return job.get_status(refresh=False) in _ACTIVE

    def depth(self) -> dict[str, int]:
        return {self.name: self.queue.count}

    def counts(self) -> list[QueueDepth]:
        """This deployment's queue (its workers take no other): waiting, running, failed and
        delayed jobs."""
        queue = self.queue
        try:
            return [
                QueueDepth(
                    name=self.name,
                    queued=queue.count,
                    started=queue.started_job_registry.count,
                    failed=queue.failed_job_registry.count,
                    scheduled=queue.scheduled_job_registry.count,
                )
            ]
        except (redis.RedisError, OSError) as error:
            raise Unavailable(
                f"The task queue's Redis did not answer: {type(error).__name__}."
            ) from None

    async def depths(self) -> list[QueueDepth]:
        """`counts` from async code, without blocking the event loop."""
        return await anyio.to_thread.run_sync(self.counts, abandon_on_cancel=True)

    def close(self) -> None:
        self.connection.close()
        close_sentinels_sync(self.connection)
