"""Embedded mode: the in-process worker threads and scheduler consume the fakeredis queue."""

from __future__ import annotations

from rq.job import Job
from rq.serializers import JSONSerializer

from service.queue import TaskQueue
from tests.api.conftest import Gateway
from tests.support import wait_for


def test_worker_threads_run_queued_and_delayed_tasks(gateway: Gateway) -> None:
    assert gateway.settings.redis_url is not None
    queue = TaskQueue(gateway.settings.redis_url)
    try:
        now_id = queue.enqueue("ping", "now")
        later_id = queue.enqueue("ping", "later", delay_seconds=1)

        def result(job_id: str) -> object:
            job = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
            return job.return_value()

        assert wait_for(lambda: result(now_id), timeout=30, what="queued task") == "now"
        assert wait_for(lambda: result(later_id), timeout=90, what="delayed task") == "later"
    finally:
        queue.close()
