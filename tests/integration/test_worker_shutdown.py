"""`tunegate worker` ends within `--shutdown-timeout` on every way of asking: SIGTERM or SIGINT,
to its process or its whole process group (systemd's default, `kill -- -PGID`, Ctrl+C), idle
or busy, with Redis up or gone; a task that outlives the timeout is handed back to the queue."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from service.queue import queue_name
from tests.integration.conftest import descendants
from tests.support import free_port, tunegate_process, wait_for

pytestmark = pytest.mark.integration

SHUTDOWN_TIMEOUT = 10
EXIT_SLACK = 15  # generous: a loaded machine starts and reaps processes slowly


@contextlib.contextmanager
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of the test's own, which it may kill."""
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for(lambda: _answers(url), timeout=30, what="private redis-server")
        yield url, server
    finally:
        server.kill()
        server.wait(timeout=10)


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_worker(url: str, namespace: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        "REDIS_URL": url,
        "TUNEGATE_REDIS_NAMESPACE": namespace,
        "TUNEGATE_DATA_DIR": str(tmp_path / "data"),
        "TUNEGATE_LOG_FORMAT": "json",
    }
    args = ["worker", "--shutdown-timeout", str(SHUTDOWN_TIMEOUT)]
    return tunegate_process(args, env, tmp_path / "worker.log")


def rq_queue(url: str, namespace: str) -> Queue:
    return Queue(
        queue_name(namespace), connection=redis.Redis.from_url(url), serializer=JSONSerializer
    )


def in_work_loop(queue: Queue) -> bool:
    return Worker.count(queue=queue) > 0


def started(job: Job) -> bool:
    return job.get_status(refresh=True) == "started"


def ask_to_stop(worker: subprocess.Popen[bytes], signum: int, target: str) -> None:
    if target == "group":
        os.killpg(worker.pid, signum)  # tunegate_process starts it in a session of its own
    else:
        os.kill(worker.pid, signum)


def ended_in_time(worker: subprocess.Popen[bytes], log: Path, *, backstop_ok: bool = False) -> None:
    forked = descendants(worker.pid)
    try:
        worker.wait(timeout=SHUTDOWN_TIMEOUT + EXIT_SLACK)
    except subprocess.TimeoutExpired:
        for pid in [worker.pid, *forked]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=10)
        pytest.fail("worker still running:\n" + log.read_text(errors="replace")[-3000:])
    stopped = log.read_text(errors="replace")
    if backstop_ok and '"worker_stop_overdue"' in stopped:
        return  # Redis gone: RQ's teardown may still be waiting on it when the backstop ends it
    assert '"worker_stopped"' in stopped  # its own way out, not the backstop


@pytest.mark.parametrize("redis_state", ["up", "down"])
@pytest.mark.parametrize("work", ["idle", "busy"])
@pytest.mark.parametrize("target", ["process", "group"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_the_worker_ends_within_the_shutdown_timeout(
    signum: int, target: str, work: str, redis_state: str, tmp_path: Path
) -> None:
    with private_redis(tmp_path) as (url, server):
        queue = rq_queue(url, "stop")
        worker = start_worker(url, "stop", tmp_path)
        try:
            wait_for(lambda: in_work_loop(queue), timeout=60, what="the worker's RQ loop")
            if work == "busy":
                job = queue.enqueue("time.sleep", 3)
                wait_for(lambda: started(job), timeout=60, what="the task to start")
            if redis_state == "down":
                server.kill()
                server.wait(timeout=10)
            ask_to_stop(worker, signum, target)
            ended_in_time(worker, tmp_path / "worker.log", backstop_ok=redis_state == "down")
            if redis_state == "up":
                log = (tmp_path / "worker.log").read_text(errors="replace")
                assert "Traceback" not in log, log[-3000:]
            if work == "busy" and redis_state == "up":
                assert job.get_status(refresh=True) == "finished"  # finished, not abandoned
        finally:
            for pid in [worker.pid, *descendants(worker.pid)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_a_task_outliving_the_timeout_is_handed_back(
    redis_url: str, redis_namespace: str, tmp_path: Path
) -> None:
    queue = rq_queue(redis_url, redis_namespace)
    worker = start_worker(redis_url, redis_namespace, tmp_path)
    try:
        wait_for(lambda: in_work_loop(queue), timeout=60, what="the worker's RQ loop")
        job = queue.enqueue("time.sleep", 600)
        wait_for(lambda: started(job), timeout=60, what="the task to start")
        os.killpg(worker.pid, signal.SIGTERM)
        ended_in_time(worker, tmp_path / "worker.log")
        assert job.get_status(refresh=True) == "queued"
        assert queue.get_job_ids()[0] == job.id  # first in line for the next worker
    finally:
        for pid in [worker.pid, *descendants(worker.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        queue.delete(delete_jobs=True)
