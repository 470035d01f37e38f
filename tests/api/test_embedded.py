"""Embedded mode: the in-process worker threads and scheduler consume the fakeredis queue, which
listens on no socket, and idle worker threads wait instead of polling."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

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


def test_the_embedded_redis_is_reached_in_process_only(gateway: Gateway) -> None:
    """Nothing else on the machine can reach it: no port, no password to guess."""
    assert (gateway.settings.redis_url or "").startswith("embedded://")


IDLE_SECONDS = 3.0


def test_an_idle_worker_thread_waits_for_work_instead_of_polling(tmp_path: Path) -> None:
    """An idle thread blocks in one pop per second (plus its heartbeat); fakeredis answered
    RQ's BLMOVE at once, so idle threads spun a core between them."""
    redis = EmbeddedRedis().start()
    try:
        settings = gateway_settings(tmp_path, "http://127.0.0.1:9/v1", redis_url=redis.url)
        worker = thread_worker(settings, 0)
        commands: list[Any] = []
        execute = worker.connection.execute_command

        def counted(*args: Any, **kwargs: Any) -> Any:
            commands.append(args[0])
            return execute(*args, **kwargs)

        worker.connection.execute_command = counted  # type: ignore[method-assign]
        thread = threading.Thread(target=worker.work, daemon=True)
        thread.start()
        time.sleep(IDLE_SECONDS)  # a window to count in, not a speed measure: slower means fewer
        worker.request_stop()
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert len(commands) < 20 * IDLE_SECONDS, sorted(set(map(str, commands)))
    finally:
        redis.stop()
