"""The task queue's depth as the operator's health page reads it, on the embedded Redis."""

from __future__ import annotations

import pytest

from service.domain.health import QueueDepth
from service.embedded import EmbeddedRedis
from service.errors import Unavailable
from service.queue import TaskQueue


def test_the_queue_counts_waiting_and_delayed_jobs_and_says_when_redis_is_gone() -> None:
    redis = EmbeddedRedis().start()
    queue = TaskQueue(redis.url, "depth")
    try:
        assert queue.counts() == [QueueDepth("tunegate-depth", 0, 0, 0, 0)]
        queue.enqueue("sweep")  # no worker takes it: it waits
        queue.enqueue("sweep", delay_seconds=3600)
        assert queue.counts() == [
            QueueDepth("tunegate-depth", queued=1, started=0, failed=0, scheduled=1)
        ]
        redis.stop()
        with pytest.raises(Unavailable):
            queue.counts()
    finally:
        queue.close()
        redis.stop()
