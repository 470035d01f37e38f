"""Embedded mode: the in-process worker threads and scheduler consume the fakeredis queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.exceptions import RedisError

from service.embedded import EmbeddedRedis
from service.queue import TaskQueue
from tests.api.conftest import Gateway, gateway_settings
from tests.support import assert_runs_queued_and_delayed_tasks
from workers.main import thread_worker


def test_worker_threads_run_queued_and_delayed_tasks(gateway: Gateway) -> None:
    assert gateway.settings.redis_url is not None
    assert_runs_queued_and_delayed_tasks(TaskQueue(gateway.settings.redis_url))


def test_a_worker_stopping_after_the_embedded_redis_went_raises_nothing(tmp_path: Path) -> None:
    """Shutdown may stop the embedded Redis under a task that outlived the wait for it."""
    redis = EmbeddedRedis().start()
    settings = gateway_settings(tmp_path, "http://127.0.0.1:9/v1", redis_url=redis.url)
    worker = thread_worker(settings, 0)
    redis.stop()
    with pytest.raises(RedisError):
        thread_worker(settings, 1).work(burst=True)  # not stopping: a lost Redis is an error
    worker.request_stop()
    assert worker.work(burst=True) is False
