"""How a `tunegate worker` stops, whoever sends the signal.

SIGTERM and SIGINT mean the same, whether they reach the worker alone or its whole process
group (systemd, `kill -- -PGID`, Ctrl+C): an idle worker stops at once; a busy one finishes its
task, and a task still running once most of `--shutdown-timeout` has gone is handed back (its
work horse killed, the task queued again at the front) so that the process has ended before the
timeout whatever Redis is doing. A second signal hands the task back at once. RQ's own handlers
are not used: they leave the process waiting up to a minute on its pub/sub thread.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.exceptions import StopRequested
from rq.worker import Worker, WorkerStatus

from service.logging import get_logger

log = get_logger("tunegate.worker")
DEFAULT_TIMEOUT_SECONDS = 25.0
HAND_BACK_SECONDS = 5.0  # of the timeout, kept for killing the horse, requeueing and teardown
EXIT_MARGIN_SECONDS = 0.5


class Shutdown:
    def __init__(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self.requested = threading.Event()
        self.finished = threading.Event()
        self.worker: Worker | None = None  # the RQ worker while it is in its work loop

    def install(self) -> None:
        for stopping in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stopping, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        worker = self.worker
        if self.requested.is_set():
            log.warning("worker_stop_forced", signal=signal.Signals(signum).name)
            if worker is not None:
                hand_back(worker)
            return
        self.requested.set()
        log.info("worker_stopping", signal=signal.Signals(signum).name, timeout=self.timeout)
        threading.Thread(target=self._watch, name="shutdown-watch", daemon=True).start()
        if worker is None:
            return
        worker._stop_requested = True
        # Once stopping, a Redis that is down must not hold the stop: redis-py's default policy
        # retries each of the teardown's commands with backoff, seconds each.
        worker.connection.set_retry(Retry(NoBackoff(), 0))
        if worker.get_state() == WorkerStatus.IDLE and not in_finalizer(frame):
            # Out of a blocking pop, or a wait for a Redis that is down. Anywhere else (starting
            # up, say, inside `Thread.start`, or a garbage collection running an object's
            # `__del__`, where Python prints the exception and drops it) an exception would
            # break what it interrupts; the loop sees `_stop_requested` before its next pop.
            raise StopRequested()

    def _watch(self) -> None:
        """Hand a slow task back, and never let the process outlive the timeout."""
        grace = max(self.timeout - HAND_BACK_SECONDS, self.timeout / 2)
        if self.finished.wait(grace):
            return
        worker = self.worker
        if worker is not None and worker.get_state() == WorkerStatus.BUSY:
            hand_back(worker)
        if self.finished.wait(max(self.timeout - grace - EXIT_MARGIN_SECONDS, 0)):
            return
        log.error("worker_stop_overdue", timeout=self.timeout)
        os._exit(1)


def in_finalizer(frame: FrameType | None) -> bool:
    """Whether the interrupted code runs inside an object's `__del__`."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def hand_back(worker: Any) -> None:
    """Kill the work horse; the worker then queues its task again (see `requeue_handed_back`)."""
    job_id = worker.get_current_job_id()
    if job_id is None or not worker.horse_pid:
        return
    worker.handed_back_job_id = job_id
    log.warning("worker_task_handed_back", task=job_id)
    worker.kill_horse(signal.SIGKILL)


def requeue_handed_back(job: Any) -> None:
    """A handed-back task failed only because its horse was killed: queue it again, first."""
    if job.get_status(refresh=True) == "failed":
        job.requeue(at_front=True)
