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
from rq.exceptions import StopRequested
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty

from service.config import Settings
from service.errors import Unavailable
from service.logging import get_logger
from service.operations import maintenance
from service.operations.jobs import cycle as job_cycle
from service.queue import connect_sync_redis, queue_name
from service.store import Store
from service.upstream import tls_context
from workers import runtime
from workers.shutdown import (
    DEFAULT_TIMEOUT_SECONDS,
    HAND_BACK_SECONDS,
    Shutdown,
    requeue_handed_back,
)

log = get_logger("tunegate.worker")
HEARTBEAT_SECONDS = 10.0
# RQ re-takes a dead worker's scheduler lock and retries abandoned jobs at maintenance time
MAINTENANCE_SECONDS = 30
REDIS_RETRY_CEILING_SECONDS = 5.0
PUBSUB_WAIT_SECONDS = 1.0


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
        except Unavailable as waiting:  # Redis or the upstream not there yet: said, no traceback
            log.warning("sweep_tick_skipped", reason=waiting.message)
        except Exception:
            log.warning("sweep_tick_failed", exc_info=True)


def start_sweep_ticker(settings: Settings, stop: threading.Event) -> None:
    threading.Thread(
        target=_sweep_ticker, args=(settings, stop), name="sweep-ticker", daemon=True
    ).start()


def _poll_ticker(settings: Settings, stop: threading.Event) -> None:
    """The poll cycle's clock (`jobs.cycle.run_timed_cycles`), one context for all its walks."""
    runtime.bind_thread(settings)
    while not stop.is_set():
        try:
            runtime.run_operation(lambda ctx: job_cycle.run_timed_cycles(ctx, stop.is_set))
        except Unavailable as waiting:  # the sandbox not published yet
            log.warning("poll_cycles_waiting", reason=waiting.message)
        except Exception:
            log.warning("poll_cycles_failed", exc_info=True)
        stop.wait(HEARTBEAT_SECONDS)


def start_poll_ticker(settings: Settings, stop: threading.Event) -> None:
    threading.Thread(
        target=_poll_ticker, args=(settings, stop), name="poll-ticker", daemon=True
    ).start()


def _housekeeping(settings: Settings, name: str, parent: int) -> None:
    stop = start_heartbeat(settings.redis_url or "", name)
    start_sweep_ticker(settings, stop)
    start_poll_ticker(settings, stop)
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
    """The worker's heartbeat, sweep ticker, poll cycle clock and RQ scheduler (delayed jobs),
    in a process of their own that ends with the worker, even a SIGKILLed one (RQ's own
    scheduler process outlives a killed worker). RQ forks a work horse per task, and a fork
    taken while another thread of the worker holds a lock (a log write, say) leaves the horse
    waiting for it forever; so the worker keeps no thread of ours, and this process, which has
    them, never forks."""
    process = multiprocessing.get_context("fork").Process(
        target=_housekeeping,
        args=(settings, name, os.getpid()),
        name="tunegate-housekeeping",
        daemon=True,
    )
    process.start()
    return process


def run_worker(
    settings: Settings, *, burst: bool = False, shutdown_timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> None:
    """One worker process: forks a work horse per job; its housekeeping process runs the
    scheduler for delayed jobs. Stops on SIGTERM or SIGINT within `shutdown_timeout`."""
    assert settings.redis_url is not None
    shutdown = Shutdown(shutdown_timeout)
    shutdown.install()
    runtime.configure(settings)
    tls_context()  # once, here: every work horse forked from this process inherits it
    connection = connect_sync_redis(settings.redis_url)
    queue = Queue(
        queue_name(settings.redis_namespace), connection=connection, serializer=JSONSerializer
    )
    name = _worker_name("worker")
    housekeeping = start_housekeeping(settings, name)
    log.info("worker_started", worker=name, queue=queue.name)
    try:
        while not _work(queue, name, shutdown, burst=burst):
            log.warning("worker_lost_redis", worker=name)
            _wait_for_redis(connection, shutdown.requested)
            name = _worker_name("worker")
    finally:
        housekeeping.terminate()
        housekeeping.join(timeout=HAND_BACK_SECONDS / 2)
        shutdown.finished.set()
        log.info("worker_stopped", worker=name)


def _work(queue: Queue, name: str, shutdown: Shutdown, *, burst: bool) -> bool:
    """Run an RQ worker; True when it stopped as asked (a signal, or burst mode), False when
    it quit on its own. RQ's worker quits when Redis goes away mid-job (a restart, a
    failover); the process must outlive that, so the caller starts a new one."""
    if shutdown.requested.is_set():
        return True
    worker = ProcessWorker(
        [queue],
        connection=queue.connection,
        serializer=JSONSerializer,
        name=name,
        maintenance_interval=MAINTENANCE_SECONDS,
    )
    shutdown.worker = worker
    try:
        worker.work(with_scheduler=False, burst=burst, logging_level="WARNING")
    except StopRequested:  # the signal came before or after RQ's own loop
        pass
    except RedisError:  # its teardown could not reach Redis either
        log.warning("worker_teardown_failed", worker=name, exc_info=True)
    finally:
        shutdown.worker = None
    return burst or shutdown.requested.is_set()


def _wait_for_redis(
    connection: Redis, stop: threading.Event, ceiling: float = REDIS_RETRY_CEILING_SECONDS
) -> None:
    delay = 0.5
    while not stop.is_set():
        try:
            connection.ping()
            return
        except RedisError:
            stop.wait(delay)
            delay = min(ceiling, delay * 2)


class Responsive:
    """Waits for work in one-second slices and for pub/sub commands a second at a time, so a
    stop request is seen at once and its teardown never waits on RQ's pub/sub thread (RQ
    listens a minute at a time, and joins that thread when it stops)."""

    _stop_requested: bool

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()  # type: ignore[attr-defined]
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})  # type: ignore[attr-defined]
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=PUBSUB_WAIT_SECONDS,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,  # type: ignore[attr-defined]
        )

    def dequeue_job_and_maintain_ttl(self, timeout: Any, max_idle_time: Any = None) -> Any:
        while not self._stop_requested:
            result = super().dequeue_job_and_maintain_ttl(1, max_idle_time=1)  # type: ignore[misc]
            if result is not None:
                return result
        return None


class ProcessWorker(Responsive, Worker):
    """RQ's forking worker; signals are `Shutdown`'s, and a task it hands back is queued again."""

    handed_back_job_id: str | None = None

    def _install_signal_handlers(self) -> None:
        return None

    def handle_job_failure(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> None:
        super().handle_job_failure(job, queue, *args, **kwargs)
        if job.id == self.handed_back_job_id:
            self.handed_back_job_id = None
            requeue_handed_back(job)


class ThreadWorker(Responsive, SimpleWorker):
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
    start_poll_ticker(settings, heartbeat)

    def stop_all() -> None:
        heartbeat.set()
        stop.set()
        for worker in workers:
            worker.request_stop()
        for thread in threads:
            thread.join(timeout=5)

    return stop_all
