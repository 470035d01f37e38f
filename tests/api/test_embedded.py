"""Embedded mode: the in-process worker threads and scheduler consume the fakeredis queue."""

from __future__ import annotations

from service.queue import TaskQueue
from tests.api.conftest import Gateway
from tests.support import assert_runs_queued_and_delayed_tasks


def test_worker_threads_run_queued_and_delayed_tasks(gateway: Gateway) -> None:
    assert gateway.settings.redis_url is not None
    assert_runs_queued_and_delayed_tasks(TaskQueue(gateway.settings.redis_url))
