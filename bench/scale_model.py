"""What one org, one key, one audit record and one completion cost Redis and the service: the
measured inputs of `docs/scaling.md`.

A redis-server of the benchmark's own (INFO is server-wide), the sandbox upstream in its own
process and one `tunegate serve` process against them. The benchmark creates `--orgs` orgs, a
key in each, then sends `--completions` chat completions (non-streamed, `--connections` at a
time, after a warm-up) with one `inference` key of an org whose policy redacts PII, and reads
the deltas of Redis's INFO commandstats and used_memory, the keys' MEMORY USAGE, and the serve
process's and redis-server's CPU time (user + system, from /proc). Nothing leaves 127.0.0.1.

    python bench/scale_model.py [--orgs 500] [--completions 3000] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from jobs_bench import (
    ADMIN_TOKEN,
    TERMINAL,
    UPSTREAM_KEY,
    cpu_seconds,
    create_jobs,
    dedicated_redis,
    free_port,
    start,
)
from jobs_bench import SANDBOX as JOBS_SANDBOX
from jobs_bench import wait_up as wait_for_url

from service.sandbox import serve

RUN = "scale"
PROMPT = "Summarise the ticket from jane.doe@example.com about the failed export in one line."


def redis_figures(client: redis.Redis) -> tuple[int, int]:
    """Commands served so far (less INFO itself) and bytes of data held."""
    stats: dict[str, Any] = client.info("commandstats")
    calls = sum(int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info")
    return calls, int(client.info("memory")["used_memory"])


def measure(client: redis.Redis, action: Any) -> tuple[float, int, int]:
    """Seconds, Redis commands and Redis bytes of `action()`."""
    calls, memory = redis_figures(client)
    began = time.perf_counter()
    action()
    seconds = time.perf_counter() - began
    calls_after, memory_after = redis_figures(client)
    return seconds, calls_after - calls - 1, memory_after - memory  # -1: the second INFO memory


async def complete(url: str, key: str, count: int, connections: int) -> int:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"Authorization": f"Bearer {key}"}
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            queue.get_nowait()
            response = await client.post("/v1/chat/completions", json=body)
            failures += response.status_code != 200

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=60, limits=limits
    ) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(connections)))
    return failures


def key_bytes(client: redis.Redis, pattern: str) -> tuple[int, int]:
    """How many keys match, and their MEMORY USAGE in all."""
    names = list(client.scan_iter(match=pattern, count=1000))
    return len(names), sum(int(client.memory_usage(name) or 0) for name in names)


def audit_record_bytes(client: redis.Redis) -> float:
    streams = [name for name in client.scan_iter(match="*audit*", count=1000)]
    streams = [name for name in streams if client.type(name) == b"stream"]
    records = sum(int(client.xlen(name)) for name in streams)
    total = sum(int(client.memory_usage(name, samples=0) or 0) for name in streams)
    return total / max(records, 1)


def upstream_calls(sandbox_url: str) -> int:
    response = httpx.get(
        f"{sandbox_url}/runs/{RUN}/_sandbox/counts",
        headers={"Authorization": f"Bearer {UPSTREAM_KEY}"},
        timeout=60,
    )
    return sum(int(count) for count in response.json()["requests"].values())


def jobs_phase(args: argparse.Namespace, client: redis.Redis, url: str, key: str) -> None:
    """`--jobs` fine-tuning jobs at once through one worker, from create to end: Redis commands,
    upstream calls and Redis bytes (the job's record, events, checkpoints, metrics) per job."""
    sandbox_url = args.sandbox_url
    calls, upstream = redis_figures(client)[0], upstream_calls(sandbox_url)
    worker = start(["worker"], args.worker_env, args.worker_log)  # the jobs phase's alone
    started = time.monotonic()
    states: list[str] = []
    polls = 0  # this loop's own MGETs, taken off the count
    try:
        job_ids = asyncio.run(create_jobs(url, key, args.jobs))
        while time.monotonic() - started < args.jobs_budget:
            records = client.mget([f"tg:job:{job_id}" for job_id in job_ids])
            polls += 1
            states = [str(orjson.loads(raw)["state"]) for raw in records if raw]
            if len(states) == len(job_ids) and all(state in TERMINAL for state in states):
                break
            time.sleep(1)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    minutes = (time.monotonic() - started) / 60
    calls = redis_figures(client)[0] - calls - 1 - polls
    upstream = upstream_calls(sandbox_url) - upstream
    n, ended = len(job_ids), sum(state in TERMINAL for state in states)
    held = {
        kind: sum(int(client.memory_usage(f"tg:job:{job_id}{kind}") or 0) for job_id in job_ids)
        for kind in ("", ":events", ":checkpoints", ":metrics")
    }
    parts = ", ".join(f"{kind[1:] or 'record'} {size / n:.0f}" for kind, size in held.items())
    print(
        f"per job   : {calls / n:7.1f} Redis commands and {upstream / n:.1f} upstream calls over "
        f"its life ({n} jobs at once, {ended} ended, {minutes:.2f} min; commands include the "
        f"poll cycle while they ran), {sum(held.values()) / n:6.0f} B held in Redis once ended "
        f"({parts} B; events and metrics grow with the job's steps, {JOBS_SANDBOX.total_steps} "
        f"here)"
    )


def run(args: argparse.Namespace, client: redis.Redis, url: str, serve_pid: int) -> None:
    wait_for_url(f"{url}/health")
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    orgs: list[str] = []

    def create_orgs() -> None:
        for index in range(args.orgs):
            made = admin.post("/admin/orgs", json={"name": f"org-{index}"})
            orgs.append(made.json()["id"])

    def create_keys() -> None:
        for org in orgs:
            admin.post(f"/admin/orgs/{org}/keys", json={"name": "svc", "role": "member"})

    _, org_calls, org_bytes = measure(client, create_orgs)
    _, key_calls, key_bytes_ = measure(client, create_keys)
    policy = {"pii": "redact", "log_content": "none"}
    admin.put(f"/admin/orgs/{orgs[0]}/policy", json=policy)
    made = admin.post(f"/admin/orgs/{orgs[0]}/keys", json={"name": "inf", "role": "inference"})
    key = made.json()["key"]
    asyncio.run(complete(url, key, 200, args.connections))  # warm-up: caches, connections

    redis_pid = int(client.info("server")["process_id"])
    cpu, redis_cpu = cpu_seconds(serve_pid), cpu_seconds(redis_pid)
    failures = 0

    def completions() -> None:
        nonlocal failures
        failures = asyncio.run(complete(url, key, args.completions, args.connections))

    seconds, calls, used = measure(client, completions)
    cpu, redis_cpu = cpu_seconds(serve_pid) - cpu, cpu_seconds(redis_pid) - redis_cpu
    n = args.completions
    print(f"orgs: {args.orgs}; completions: {n} at {args.connections} connections")
    print(
        f"per org   : {org_calls / args.orgs:7.1f} Redis commands, {org_bytes / args.orgs:8.0f} B"
    )
    print(
        f"per key   : {key_calls / args.orgs:7.1f} Redis commands, {key_bytes_ / args.orgs:8.0f} B"
    )
    print(f"per audit record: {audit_record_bytes(client):8.0f} B (stream MEMORY USAGE / XLEN)")
    print(
        f"per completion: {calls / n:5.1f} Redis commands, {used / n:6.0f} B of Redis memory "
        f"(audit record and counters), {cpu / n * 1000:.2f} ms service CPU, "
        f"{redis_cpu / n * 1e6:.0f} µs Redis CPU; "
        f"{n / seconds:.0f} req/s from one serve process; {failures} failed"
    )
    counters, counter_bytes = key_bytes(client, "*usage*")
    print(f"usage counters: {counters} keys, {counter_bytes} B in all (per day, model and key)")
    if args.jobs:
        member = admin.post(f"/admin/orgs/{orgs[1]}/keys", json={"name": "ft", "role": "member"})
        jobs_phase(args, client, url, member.json()["key"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=500)
    parser.add_argument("--completions", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=30, help="0: no jobs phase")
    parser.add_argument("--jobs-budget", type=float, default=300, help="seconds at most")
    args = parser.parse_args()
    sandbox_port, port = free_port(), free_port()
    args.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    config = JOBS_SANDBOX.model_copy(update={"request_log_size": 100_000})
    sandbox = multiprocessing.Process(
        target=serve, args=(config, "127.0.0.1", sandbox_port), daemon=True
    )
    sandbox.start()
    with tempfile.TemporaryDirectory() as tmp, dedicated_redis(Path(tmp)) as redis_url:
        env = {
            "REDIS_URL": redis_url,
            "TUNEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
            "OPENAI_API_KEY": UPSTREAM_KEY,
            "OPENAI_BASE_URL": f"http://127.0.0.1:{sandbox_port}/runs/{RUN}/v1",
            "TUNEGATE_DATA_DIR": tmp,
            "TUNEGATE_PORT": str(port),
            "TUNEGATE_LOG_LEVEL": "warning",
        }
        process = start(["serve"], env, Path(tmp) / "serve.log")
        args.worker_env, args.worker_log = env, Path(tmp) / "worker.log"
        try:
            run(args, redis.Redis.from_url(redis_url), f"http://127.0.0.1:{port}", process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
            sandbox.terminate()
            sandbox.join()


if __name__ == "__main__":
    main()
