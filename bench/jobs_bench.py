"""What watching fine-tuning jobs costs, and how far behind the upstream the gateway runs, with
1,000 jobs at once, two worker processes and a real Redis.

The sandbox upstream runs in its own process; its jobs validate for 5 s, wait 10 s in its queue,
then train for 80 s (20 reported steps, 4 s apart). `tunegate serve` and two `tunegate worker`
processes run against a redis-server of the benchmark's own (or `--redis URL`, flushed first).
One dataset is uploaded and the jobs are created through the API as fast as it takes them; then
the benchmark samples every half second until every job has ended or the time budget is spent.
Nothing leaves 127.0.0.1.

Reported:
- Redis commands per job per minute: the INFO commandstats delta over the run, less the
  benchmark's own commands (INFO is server-wide, hence a Redis of its own by default);
- upstream calls per job per minute, from the sandbox's request log, by endpoint;
- staleness: for each status change upstream (dated to the microsecond by the sandbox's own
  record of its jobs' changes: their events say only the whole second), how long until the
  gateway recorded it, in seconds and in poll intervals (the cycle's interval when the change
  was seen); the target is at most one interval at p99;
- the same costs while every job is running or over (from the first sample with none before
  `running` to the first with one more ended), per running job: the steady state of watching,
  without creates and endings (a job the upstream failed early does not hold the window shut);
- a second org's single job, created right after the burst: how late its changes were seen;
- worker saturation: the share of samples with every worker busy, and the longest RQ queue.

    python bench/jobs_bench.py [--jobs 1000] [--budget 300] [--step-seconds 4] [--redis URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis

from service.sandbox import SandboxConfig, serve

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM_KEY = "sk-jobs-bench-upstream"
ADMIN_TOKEN = "tga_jobs-bench-admin-token-0123456789"
RUN = "bench"
SANDBOX = SandboxConfig(
    api_key=UPSTREAM_KEY,
    org_name="bench-org",
    validating_seconds=5,
    queued_seconds=10,
    step_seconds=4,
    total_steps=20,
    request_log_size=1_000_000,
    log_body_bytes=0,
)
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
ENDPOINT = re.compile(r"(ftjob|file)-[A-Za-z0-9]+")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TUNEGATE_", "OPENAI_"))}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            cwd=ROOT,
            env={**clean, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def dedicated_redis(folder: Path) -> Iterator[str]:
    """A redis-server of the benchmark's own, so its command counts are the run's alone."""
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
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def redis_calls(client: redis.Redis) -> Counter[str]:
    stats: dict[str, Any] = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


def mine_removed(commands: Counter[str], sampler: Sampler) -> Counter[str]:
    """The run's commands without the benchmark's own (its samples and the two INFO calls)."""
    commands = commands.copy()
    commands["info"] -= 2
    commands["smembers"] -= sampler.samples
    commands["hget"] -= sampler.commands - 3 * sampler.samples
    commands["llen"] -= sampler.samples
    commands["mget"] -= sampler.samples
    return +commands


def cpu_by(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds by group, each process with its live children (a worker's housekeeping
    process, its scheduler, a running work horse)."""
    return {
        name: sum(cpu_seconds(p) for pid in group for p in [pid, *children(pid)])
        for name, group in pids.items()
    }


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children (RQ's work horses)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # it ended meanwhile
        return 0.0
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def create_jobs(url: str, key: str, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        rows = [
            {
                "messages": [
                    {"role": "user", "content": f"q{i}"},
                    {"role": "assistant", "content": "a"},
                ]
            }
            for i in range(20)
        ]
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        files = {"file": ("bench.jsonl", data)}
        training = await client.post("/v1/files", files=files, data={"purpose": "fine-tune"})
        file_id = training.json()["id"]
        gate = asyncio.Semaphore(16)

        async def one(index: int) -> str:
            async with gate:
                body = {"model": "gpt-4o-mini", "training_file": file_id, "seed": index}
                response = await client.post("/v1/fine_tuning/jobs", json=body)
                response.raise_for_status()
                return str(response.json()["id"])

        return list(await asyncio.gather(*(one(i) for i in range(count))))


class Sampler:
    """Worker states and queue length, every half second, counting its own Redis commands."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.commands = 0
        self.samples = 0
        self.all_busy = 0
        self.longest_queue = 0

    def sample(self, job_ids: list[str]) -> tuple[int, int]:
        """Take one sample; returns how many jobs have ended and how many are running (the rest
        are not running yet)."""
        workers = list(self.client.smembers("rq:workers:tunegate"))
        with self.client.pipeline(transaction=False) as pipe:
            for name in workers:
                pipe.hget(name, "state")
            pipe.llen("rq:queue:tunegate")
            pipe.mget([f"tg:job:{job_id}" for job_id in job_ids])
            *states, queued, records = pipe.execute()
        self.commands += 1 + len(workers) + 2
        busy = [state == b"busy" for state in states]
        self.samples += 1
        self.all_busy += bool(busy) and all(busy)
        self.longest_queue = max(self.longest_queue, int(queued))
        states = [orjson.loads(raw)["state"] for raw in records if raw]
        return sum(s in TERMINAL for s in states), sum(s == "running" for s in states)


def task_times(client: redis.Redis) -> dict[str, list[float]]:
    """Seconds each RQ task ran, by kind (RQ keeps finished tasks for a few minutes)."""
    found: dict[str, list[float]] = {}
    for key in client.scan_iter("rq:job:*", count=1000):
        started, ended = client.hmget(key, "started_at", "ended_at")
        if not started or not ended:
            continue
        kind = re.sub(r"-?[0-9]+$", "", key.decode().removeprefix("rq:job:"))
        kind = "tg-due" if kind.startswith("tg-due") else kind.split("-")[0]
        seconds = (_stamp(ended) - _stamp(started)).total_seconds()
        found.setdefault(kind, []).append(seconds)
    return found


def _stamp(raw: bytes) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(raw.decode().replace("Z", "+00:00"))


def synced(client: redis.Redis, job_ids: list[str]) -> bool:
    """Whether every ended job's last events are in (its `sync` finishing step done)."""
    records = client.mget([f"tg:job:{job_id}" for job_id in job_ids])
    return not any("sync" in orjson.loads(raw).get("pending", []) for raw in records if raw)


def staleness(
    client: redis.Redis, sandbox_url: str, job_ids: list[str]
) -> dict[str, list[tuple[float, float]]]:
    """By status: (seconds behind, poll intervals behind) for every change the gateway saw."""
    changes = httpx.get(
        f"{sandbox_url}/runs/{RUN}/_sandbox/jobs/changes",
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
        timeout=60,
    ).json()
    found: dict[str, list[tuple[float, float]]] = {}
    for job_id in job_ids:
        record = orjson.loads(client.get(f"tg:job:{job_id}") or b"{}")
        upstream = {c["status"]: c["at"] for c in changes.get(record.get("upstream_id"), [])}
        for seen in record.get("history", []):
            changed_at = upstream.get(seen["state"])
            if changed_at is not None and seen.get("poll_delay"):
                lag = max(0.0, seen["at"] - changed_at)
                found.setdefault(seen["state"], []).append((lag, lag / seen["poll_delay"]))
    return found


Window = tuple[float, Counter[str], Counter[str], dict[str, float]]


def open_window(client: redis.Redis, sandbox_url: str, pids: dict[str, list[int]]) -> Window:
    return time.monotonic(), redis_calls(client), upstream_calls(sandbox_url), cpu_by(pids)


def steady_state(
    window: Window,
    client: redis.Redis,
    sandbox_url: str,
    pids: dict[str, list[int]],
    jobs: int,
) -> dict[str, Any]:
    """Costs from the first sample with no job before `running` to the first with one more
    ended (the sampler's own Redis commands are left in: a few per sample)."""
    since, redis_before, calls_before, cpu_before = window
    return {
        "minutes": (time.monotonic() - since) / 60,
        "jobs": jobs,
        "redis": redis_calls(client) - redis_before,
        "calls": upstream_calls(sandbox_url) - calls_before,
        "workers_cpu": cpu_by(pids)["workers"] - cpu_before["workers"],
    }


def upstream_calls(sandbox_url: str) -> Counter[str]:
    response = httpx.get(
        f"{sandbox_url}/runs/{RUN}/_sandbox/counts",
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
        timeout=60,
    )
    calls: Counter[str] = Counter()
    for endpoint, count in response.json()["requests"].items():
        calls[ENDPOINT.sub(lambda m: "{" + m[1] + "}", endpoint)] += count
    return calls


def report(args: argparse.Namespace, minutes: float, figures: dict[str, Any]) -> None:
    jobs = args.jobs
    print(f"\n{jobs} jobs, {minutes:.2f} min from the first create to the end")
    print(f"load average before and after: {figures['load'][0]} / {figures['load'][1]}")
    print(f"ended: {figures['ended']} of {jobs}")
    commands: Counter[str] = figures["redis"]
    print(f"Redis commands per job per minute: {commands.total() / jobs / minutes:.1f}")
    top = ", ".join(
        f"{name} {count / jobs / minutes:.1f}" for name, count in commands.most_common(8)
    )
    print(f"  of which {top}")
    calls: Counter[str] = figures["calls"]
    total = sum(calls.values())
    print(f"upstream calls per job per minute: {total / jobs / minutes:.2f}")
    for endpoint, count in calls.most_common():
        print(f"  {endpoint:<48} {count / jobs / minutes:7.2f}  ({count} in all)")
    steady: dict[str, Any] | None = figures["steady"]
    if steady is None:
        print("no window with every job running was sampled")
    else:
        window, running = steady["minutes"], steady["jobs"]
        print(
            f"while all {running} ran ({window:.2f} min): upstream calls per job per minute "
            f"{steady['calls'].total() / running / window:.2f}, Redis commands per job per "
            f"minute {steady['redis'].total() / running / window:.1f}, worker CPU per job per "
            f"minute {steady['workers_cpu'] * 1000 / running / window:.1f} ms"
        )
        for endpoint, count in steady["calls"].most_common():
            print(f"  {endpoint:<48} {count / running / window:7.2f}  ({count} in all)")
        top = ", ".join(
            f"{name} {count / running / window:.2f}"
            for name, count in steady["redis"].most_common(8)
        )
        print(f"  Redis, of which {top}")
    for state, lags in figures["second_org"].items():
        print(
            "  second org's job, "
            + f"{state}: {', '.join(f'{lag:.1f} s = {ratio:.2f} intervals' for lag, ratio in lags)}"
        )
    by_state: dict[str, list[tuple[float, float]]] = figures["lags"]
    everything = [lag for lags in by_state.values() for lag in lags]
    print(f"status changes seen: {len(everything)}")
    for state, lags in [*by_state.items(), ("all", everything)]:
        seconds, intervals = [lag for lag, _ in lags], [ratio for _, ratio in lags]
        if len(lags) < 2:
            continue
        print(
            f"  staleness {state:<9}: seconds median {statistics.median(seconds):5.1f}, "
            f"p95 {statistics.quantiles(seconds, n=20)[-1]:5.1f}, worst {max(seconds):5.1f}; "
            f"poll intervals median {statistics.median(intervals):4.2f}, "
            f"p99 {statistics.quantiles(intervals, n=100)[-1]:4.2f}, worst {max(intervals):4.2f}"
        )
    sampler: Sampler = figures["sampler"]
    print(
        f"every worker busy in {sampler.all_busy} of {sampler.samples} samples; "
        f"longest RQ queue {sampler.longest_queue}"
    )
    cpu: dict[str, float] = figures["cpu"]
    shares = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in cpu.items())
    print(f"CPU over the run: {shares} ({cpu['workers'] / jobs * 1000:.0f} ms of workers per job)")
    for kind, seconds in sorted(figures["tasks"].items()):
        print(
            f"  task {kind}: {len(seconds)} run, median {statistics.median(seconds):.2f} s, "
            f"total {sum(seconds):.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=300.0, help="seconds, at most")
    parser.add_argument(
        "--step-seconds",
        type=float,
        default=4.0,
        help="seconds per reported step, 20 steps of training (15: 4 a minute, as OpenAI's)",
    )
    parser.add_argument("--rpm", type=int, default=6000, help="TUNEGATE_UPSTREAM_RPM")
    parser.add_argument("--redis", default=None, help="default: a redis-server of its own")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the processes it started
    with contextlib.ExitStack() as stack:
        if args.redis is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            args.redis = stack.enter_context(dedicated_redis(folder))
        bench(args)


def bench(args: argparse.Namespace) -> None:
    client = redis.Redis.from_url(args.redis)
    client.flushdb()
    sandbox_port, port = free_port(), free_port()
    config = SANDBOX.model_copy(update={"step_seconds": args.step_seconds})
    sandbox = multiprocessing.Process(
        target=serve, args=(config, "127.0.0.1", sandbox_port), daemon=True
    )
    sandbox.start()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "REDIS_URL": args.redis,
            "TUNEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
            "OPENAI_API_KEY": UPSTREAM_KEY,
            "OPENAI_BASE_URL": f"{sandbox_url}/runs/{RUN}/v1",
            "TUNEGATE_DATA_DIR": tmp,
            "TUNEGATE_PORT": str(port),
            "TUNEGATE_LOG_LEVEL": "warning",
            "TUNEGATE_UPSTREAM_RPM": str(args.rpm),
        }
        logs = Path(tmp)
        processes = [start(["worker"], env, logs / f"worker{i}.log") for i in range(2)]
        processes.append(start(["serve"], env, logs / "serve.log"))
        try:
            run(args, client, url, sandbox_url, processes, sandbox.pid or 0)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=30)
            sandbox.terminate()
            sandbox.join()
            client.flushdb()


def run(
    args: argparse.Namespace,
    client: redis.Redis,
    url: str,
    sandbox_url: str,
    processes: list[subprocess.Popen[bytes]],
    sandbox_pid: int,
) -> None:
    wait_up(f"{url}/health")
    wait_up(f"{sandbox_url}/v1/models")
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    org = admin.post("/admin/orgs", json={"name": "bench", "policy": {"pii": "allow"}}).json()
    key = admin.post(f"/admin/orgs/{org['id']}/keys", json={"name": "b", "role": "member"})
    sampler = Sampler(client)
    pids = {
        "workers": [p.pid for p in processes[:2]],
        "serve": [processes[2].pid],
        "sandbox": [sandbox_pid],
        "redis": [int(client.info("server")["process_id"])],
    }
    before, cpu_before = redis_calls(client), cpu_by(pids)
    load = Path("/proc/loadavg").read_text().split()[0]
    started = time.monotonic()
    job_ids = asyncio.run(create_jobs(url, key.json()["key"], args.jobs))
    print(f"created {len(job_ids)} jobs in {time.monotonic() - started:.1f} s")
    other = admin.post("/admin/orgs", json={"name": "other", "policy": {"pii": "allow"}}).json()
    other_key = admin.post(f"/admin/orgs/{other['id']}/keys", json={"name": "o", "role": "member"})
    second = asyncio.run(create_jobs(url, other_key.json()["key"], 1))
    ended, steady, window, ended_before, running_then = 0, None, None, 0, 0
    while ended < len(job_ids) and time.monotonic() - started < args.budget:
        time.sleep(0.5)
        ended, running = sampler.sample(job_ids)
        if window is None and running and running + ended == len(job_ids):
            window = open_window(client, sandbox_url, pids)
            ended_before, running_then = ended, running
        elif window is not None and steady is None and ended > ended_before:
            steady = steady_state(window, client, sandbox_url, pids, running_then)
    # an end the list walk recorded has its last events read just after: the staleness of
    # every end is dated by them, so the run lasts until they are in
    finished = time.monotonic() + 120
    while time.monotonic() < finished and not synced(client, [*job_ids, *second]):
        time.sleep(0.5)
    minutes = (time.monotonic() - started) / 60
    after = redis_calls(client)
    figures = {
        "ended": ended,
        "redis": mine_removed(after - before, sampler),
        "calls": upstream_calls(sandbox_url),
        "lags": staleness(client, sandbox_url, job_ids),
        "second_org": staleness(client, sandbox_url, second),
        "steady": steady,
        "sampler": sampler,
        "cpu": {name: spent - cpu_before[name] for name, spent in cpu_by(pids).items()},
        "tasks": task_times(client),
        "load": (load, Path("/proc/loadavg").read_text().split()[0]),
    }
    report(args, minutes, figures)


if __name__ == "__main__":
    main()
