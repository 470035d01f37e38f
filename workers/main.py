"""`tunegate worker`: RQ workers with the scheduler, as processes or (embedded) threads."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, Worker
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from service.config import Settings
from service.logging import get_logger
from service.operations import maintenance
from service.queue import connect_sync_redis, queue_name
from service.store import Store
from workers import runtime

log = get_logger("tunegate.worker")
HEARTBEAT_SECONDS = 10.0
# RQ re-takes a dead worker's scheduler lock and retries abandoned jobs at maintenance time
MAINTENANCE_SECONDS = 30
REDIS_RETRY_CEILING_SECONDS = 5.0


def _worker_name(kind: str) -> str:
    return f"tunegate-{kind}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _heartbeat_loop(redis_url: str, name: str, stop: threading.Event) -> None:
    async def beat_forever() -> None:
        store = Store(redis_url)
        try:
            while not stop.is_set():
                try:
                    await store.workers.beat(name)
                except Exception:
                    log.warning("worker_heartbeat_failed", worker=name)
                await asyncio.to_thread(stop.wait, HEARTBEAT_SECONDS)
        finally:
            await store.aclose()

    asyncio.run(beat_forever())


def start_heartbeat(redis_url: str, name: str) -> threading.Event:
    stop = threading.Event()
    threading.Thread(
        target=_heartbeat_loop, args=(redis_url, name, stop), name="heartbeat", daemon=True
    ).start()
    return stop


def _sweep_ticker(settings: Settings, stop: threading.Event) -> None:
    runtime.bind_thread(settings)
    interval = settings.sweep_seconds
    while not stop.wait(interval - time.time() % interval):
        try:
            runtime.run_operation(maintenance.tick)
        except Exception:
            log.warning("sweep_tick_failed", exc_info=True)


def start_sweep_ticker(settings: Settings, stop: threading.Event) -> None:
    threading.Thread(
        target=_sweep_ticker, args=(settings, stop), name="sweep-ticker", daemon=True
    ).start()


def _housekeeping(settings: Settings, name: str, parent: int) -> None:
    stop = start_heartbeat(settings.redis_url or "", name)
    start_sweep_ticker(settings, stop)
    scheduler = threading.Thread(
        target=_scheduler_loop, args=(settings, stop), name="rq-scheduler", daemon=True
    )
    scheduler.start()
    for stopping in (signal.SIGTERM, signal.SIGINT):  # from the worker, or a terminal's Ctrl+C
        signal.signal(stopping, lambda *_: stop.set())
    while os.getppid() == parent and not stop.wait(1.0):
        pass
    stop.set()
    scheduler.join(timeout=5)  # it releases the scheduler lock on its way out


def start_housekeeping(settings: Settings, name: str) -> BaseProcess:
    """The worker's heartbeat, sweep ticker and RQ scheduler (delayed jobs), in a process of
    their own that ends with the worker, even a SIGKILLed one (RQ's own scheduler process
    outlives a killed worker). RQ forks a work horse per task, and a fork taken while another
    thread of the worker holds a lock (a log write, say) leaves the horse waiting for it
    forever; so the worker keeps no thread of ours, and this process, which has them, never
    forks."""
    process = multiprocessing.get_context("fork").Process(
        target=_housekeeping,
        args=(settings, name, os.getpid()),
        name="tunegate-housekeeping",
        daemon=True,
    )
    process.start()
    return process


def run_worker(settings: Settings, *, burst: bool = False) -> None:
    """One worker process: forks a work horse per job; its housekeeping process runs the
    scheduler for delayed jobs."""
    assert settings.redis_url is not None
    runtime.configure(settings)
    connection = connect_sync_redis(settings.redis_url)
    queue = Queue(
        queue_name(settings.redis_namespace), connection=connection, serializer=JSONSerializer
    )
    name = _worker_name("worker")
    housekeeping = start_housekeeping(settings, name)
    log.info("worker_started", worker=name, queue=queue.name)
    try:
        while not _work(queue, name, burst=burst):
            log.warning("worker_lost_redis", worker=name)
            _wait_for_redis(connection)
            name = _worker_name("worker")
    finally:
        housekeeping.terminate()
        housekeeping.join(timeout=5)


def _work(queue: Queue, name: str, *, burst: bool) -> bool:
    """Run an RQ worker; True when it stopped as asked (a signal, or burst mode), False when
    it quit on its own. RQ's worker quits when Redis goes away mid-job (a restart, a
    failover); the process must outlive that, so the caller starts a new one."""
    worker = Worker(
        [queue],
        connection=queue.connection,
        serializer=JSONSerializer,
        name=name,
        maintenance_interval=MAINTENANCE_SECONDS,
    )
    try:
        worker.work(with_scheduler=False, burst=burst, logging_level="WARNING")
    except RedisError:  # its teardown could not reach Redis either
        log.warning("worker_teardown_failed", worker=name, exc_info=True)
    # a signal sets the shutdown date whether the worker was busy (it stops after the job) or
    # idle (it stops at once, leaving `_stop_requested` unset)
    return burst or worker._stop_requested or worker._shutdown_requested_date is not None


def _wait_for_redis(connection: Redis, ceiling: float = REDIS_RETRY_CEILING_SECONDS) -> None:
    delay = 0.5
    while True:
        try:
            connection.ping()
            return
        except RedisError:
            time.sleep(delay)
            delay = min(ceiling, delay * 2)


class ThreadWorker(SimpleWorker):
    """Runs jobs in its own thread: no fork, no signal handlers (only the main thread may)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        return None

    def _set_ip_address(self, connection: object) -> None:
        self.ip_address = "in-process"

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings

    def work(self, *args: Any, **kwargs: Any) -> bool:
        runtime.bind_thread(self.settings)
        try:
            return bool(super().work(*args, **kwargs))
        except RedisError:
            if not self._stop_requested:
                raise
            # shutting down with a task still running: the embedded Redis went first
            log.info("embedded_worker_stopped_without_redis", worker=self.name)
            return False

    def request_stop(self) -> None:
        """Finish the task in hand, then stop (the thread has no signals to receive)."""
        self._stop_requested = True

    def dequeue_job_and_maintain_ttl(self, timeout: Any, max_idle_time: Any = None) -> Any:
        """Wait for a job in one-second slices so a stop request is seen promptly."""
        while not self._stop_requested:
            result = super().dequeue_job_and_maintain_ttl(1, max_idle_time=1)
            if result is not None:
                return result
        return None


def _scheduler_loop(settings: Settings, stop: threading.Event) -> None:
    assert settings.redis_url is not None
    connection = connect_sync_redis(settings.redis_url)
    scheduler = RQScheduler(
        [queue_name(settings.redis_namespace)], connection=connection, serializer=JSONSerializer
    )
    while not stop.wait(1.0):
        try:
            if scheduler.acquire_locks():
                scheduler.enqueue_scheduled_jobs()
        except Exception:
            if not stop.is_set():
                log.warning("scheduler_tick_failed", exc_info=True)
    with contextlib.suppress(Exception):
        scheduler.release_locks()


def thread_worker(settings: Settings, index: int) -> ThreadWorker:
    assert settings.redis_url is not None
    connection = connect_sync_redis(settings.redis_url)
    queue = Queue(
        queue_name(settings.redis_namespace), connection=connection, serializer=JSONSerializer
    )
    return ThreadWorker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        name=_worker_name(f"thread{index}"),
        settings=settings,
    )


def start_thread_workers(settings: Settings, count: int = 2) -> Callable[[], None]:
    """Embedded mode: `count` worker threads and a scheduler thread in this process.
    Returns the function that stops them (before the embedded Redis goes away)."""
    assert settings.redis_url is not None
    stop = threading.Event()
    workers: list[ThreadWorker] = []
    threads = [
        threading.Thread(
            target=_scheduler_loop,
            args=(settings, stop),
            daemon=True,
            name="rq-scheduler",
        )
    ]
    for index in range(count):
        worker = thread_worker(settings, index)
        workers.append(worker)
        threads.append(
            threading.Thread(
                target=worker.work,
                kwargs={"logging_level": "WARNING"},
                daemon=True,
                name=f"rq-worker-{index}",
            )
        )
    for thread in threads:
        thread.start()
    heartbeat = start_heartbeat(settings.redis_url, _worker_name("embedded"))
    start_sweep_ticker(settings, heartbeat)

    def stop_all() -> None:
        heartbeat.set()
        stop.set()
        for worker in workers:
            worker.request_stop()
        for thread in threads:
            thread.join(timeout=5)

    return stop_all
