"""Test plumbing: a real uvicorn server in a thread, free ports, a POST receiver, subprocess
helpers, the check that a worker runs queued and delayed tasks, and the size of long tests."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import uvicorn
from rq.job import Job
from rq.serializers import JSONSerializer

from service.config import Settings
from service.embedded import EmbeddedRedis
from service.operations.context import Context
from service.queue import TaskQueue
from service.store import Store

ROOT = Path(__file__).resolve().parent.parent
LONG_RUN = os.environ.get("TUNEGATE_LONG_TESTS") == "1"


def sized(everyday: int, long: int) -> int:
    """How much a soak, load or fault test does: `everyday` in the suite's usual run, `long`
    with `TUNEGATE_LONG_TESTS=1` (the same assertions, more traffic)."""
    return long if LONG_RUN else everyday


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """Serve an ASGI app on a loopback port from a daemon thread."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=10, what="server start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


Answer = Callable[[str, dict[str, str], bytes], int]


@contextmanager
def post_receiver(answer: Answer) -> Iterator[str]:
    """A loopback HTTP server that hands every POST (path, lower-cased headers, body) to
    `answer` and replies with the status it returns; yields the server's `/hooks` URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.send_response(answer(self.path, headers, body))
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


def assert_runs_queued_and_delayed_tasks(queue: TaskQueue) -> None:
    """Whatever consumes `queue` runs a task queued now and one delayed by a second."""
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


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def tunegate_process(
    args: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `tunegate <args>` as a real process with a clean environment plus `env` (in `cwd`,
    with this checkout importable, when given)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEGATE_", "OPENAI_"))}
    full_env.pop("REDIS_URL", None)
    if cwd is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
        )
    full_env.update(env)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            cwd=cwd or ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


class NamedTasks:
    """A queue that takes tasks and runs none: each queued task's name is its RQ job id."""

    async def submit(self, task: str, *args: Any, **options: Any) -> str:
        return str(options.get("job_id"))


def with_jobs(records: list[Any], run: Callable[[Any], Any]) -> Any:
    """`run(ctx)` against a Redis of its own holding the job records, tasks queued nowhere."""
    server = EmbeddedRedis().start()

    async def main() -> Any:
        ctx = Context(Settings(), Store(server.url), NamedTasks())
        for record in records:
            await ctx.store.jobs.create(record, None)
        try:
            return await run(ctx)
        finally:
            await ctx.store.aclose()

    try:
        return asyncio.run(main())
    finally:
        server.stop()
