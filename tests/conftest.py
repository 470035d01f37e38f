"""Shared fixtures.

Integration tests need a real Redis: `TUNEGATE_TEST_REDIS_URL` (CI sets it to the machine's
Redis). When it is set and Redis does not answer, they fail; when unset, they use
redis://127.0.0.1:6379/15 if it answers and are skipped otherwise (never in CI).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, settings
from rq import Queue

from service.queue import queue_name

# Wall-clock deadlines are not behaviour: a loaded 2-core CI machine must not fail a property.
settings.register_profile(
    "tunegate",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
    print_blob=True,
)
settings.load_profile("tunegate")

DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/15"


def _redis_answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    configured = os.environ.get("TUNEGATE_TEST_REDIS_URL")
    url = configured or DEFAULT_TEST_REDIS
    if _redis_answers(url):
        return url
    if configured or os.environ.get("CI"):
        pytest.fail(f"integration tests need Redis at {url} and it does not answer")
    pytest.skip(f"no Redis at {url}; set TUNEGATE_TEST_REDIS_URL to run integration tests")


@pytest.fixture()
def redis_namespace(redis_url: str) -> Iterator[str]:
    """A namespace of its own in the shared test Redis (other runs may use the same database at
    the same time, so nothing is flushed); its keys and its queue's jobs are removed afterwards."""
    namespace = f"t{secrets.token_hex(5)}"
    try:
        yield namespace
    finally:
        purge_namespace(redis_url, namespace)


def purge_namespace(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        name = queue_name(namespace)
        queue = Queue(name, connection=client)
        registries = [
            queue.started_job_registry,
            queue.finished_job_registry,
            queue.failed_job_registry,
            queue.deferred_job_registry,
            queue.scheduled_job_registry,
            queue.canceled_job_registry,
        ]
        job_ids = set(queue.get_job_ids())
        for registry in registries:
            job_ids.update(registry.get_job_ids())
        doomed = [f"rq:job:{job_id}" for job_id in job_ids]
        doomed += [f"rq:results:{job_id}" for job_id in job_ids]
        for pattern in (f"tg:{namespace}:*", f"rq:*{name}*"):
            doomed += list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(doomed), 500):
            client.delete(*doomed[start : start + 500])
    finally:
        client.close()
