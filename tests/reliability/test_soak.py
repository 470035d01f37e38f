"""Soak: mixed traffic at a steady rate against real `serve` and `worker` processes.

For `TUNEGATE_SOAK_SECONDS` (default 60; 120 with `TUNEGATE_LONG_TESTS=1`) the test sends 10
requests a second: chat completions, streamed ones, listings, a dataset upload and a fine-tuning
job every few seconds. It demands zero unexpected errors, every job succeeded, the service's
resident memory grown by under 10% from the end of the warm-up (the first quarter) to the end,
and Redis bounded: the namespace holds a bounded number of keys per dataset and job, and grows
otherwise only by the audit trail (one record per audited call). It prints the figures.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis

from tests.api.datasets import chat_jsonl
from tests.integration.test_jobs import processed_file, sdk_for, wait_end
from tests.reliability.stack import Stack, rss_kb, stack, stack_sandbox
from tests.support import sized

__all__ = ["stack", "stack_sandbox"]
pytestmark = pytest.mark.integration
SOAK_SECONDS = float(os.environ.get("TUNEGATE_SOAK_SECONDS") or sized(60, 120))
RATE = 10  # requests per second
MODEL = "gpt-4o-mini"
KEYS_PER_OBJECT = 8  # file: record, report; job: record, events, checkpoints, ...
FIXED_KEYS = 40


class Traffic:
    def __init__(self, stack: Stack, key: str, training_file: str) -> None:
        self.client = httpx.Client(
            base_url=stack.url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
            # Idle connections are dropped before the service's 5 s keep-alive ends, so no request
            # goes out on a connection the server is closing (a reset on a loaded machine).
            limits=httpx.Limits(max_connections=16, keepalive_expiry=2),
        )
        self.training_file = training_file
        self.errors: list[str] = []
        self.counts: Counter[str] = Counter()
        self.jobs: list[str] = []
        self.lock = threading.Lock()

    def send(self, tick: int) -> None:
        kind = self.kind(tick)
        try:
            response = getattr(self, kind)(tick)
            ok = response.is_success
            if ok and kind == "stream":
                ok = response.text.rstrip().endswith("data: [DONE]")
            if ok and kind == "job":
                with self.lock:
                    self.jobs.append(response.json()["id"])
            problem = None if ok else f"{kind}: {response.status_code} {response.text[:200]}"
        except httpx.HTTPError as error:
            problem = f"{kind}: {error!r}"
        with self.lock:
            self.counts[kind] += 1
            if problem:
                self.errors.append(problem)

    @staticmethod
    def kind(tick: int) -> str:
        if tick % 40 == 0:
            return "upload"
        if tick % 40 == 20:
            return "job"
        if tick % 5 == 1:
            return "stream"
        if tick % 10 == 3:
            return "listing"
        return "chat"

    def chat(self, tick: int, **extra: Any) -> httpx.Response:
        messages = [{"role": "user", "content": f"soak {tick}: say something short"}]
        body = {"model": MODEL, "messages": messages, **extra}
        return self.client.post("/v1/chat/completions", json=body)

    def stream(self, tick: int) -> httpx.Response:
        return self.chat(tick, stream=True)

    def listing(self, tick: int) -> httpx.Response:
        path = "/v1/fine_tuning/jobs" if tick % 20 == 3 else "/v1/files"
        return self.client.get(path)

    def upload(self, tick: int) -> httpx.Response:
        data = chat_jsonl(12, salt=f"soak-{tick}")
        files = {"file": ("train.jsonl", data)}
        return self.client.post("/v1/files", files=files, data={"purpose": "fine-tune"})

    def job(self, tick: int) -> httpx.Response:
        body = {"model": MODEL, "training_file": self.training_file, "suffix": f"soak{tick}"}
        return self.client.post("/v1/fine_tuning/jobs", json=body)


def namespace_figures(stack: Stack) -> tuple[Counter[str], int]:
    """Keys of the namespace by kind, and the bytes Redis says they take."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        prefix = f"tg:{stack.namespace}:"
        kinds: Counter[str] = Counter()
        memory = 0
        for name in client.scan_iter(match=f"{prefix}*", count=1000):
            kinds[name.decode()[len(prefix) :].split(":")[0]] += 1
            memory += int(client.memory_usage(name) or 0)
        return kinds, memory
    finally:
        client.close()


def test_soak(stack: Stack) -> None:
    key = stack.org_with_key("admin", policy={"pii": "allow"})
    with sdk_for(stack, key) as sdk:
        training = processed_file(sdk, "soak")
    traffic = Traffic(stack, key, training)
    ticks = int(SOAK_SECONDS * RATE)
    warm_up = ticks // 4
    rss: dict[str, int] = {}
    redis_at: dict[str, tuple[Counter[str], int]] = {}
    started = time.monotonic()
    with traffic.client, ThreadPoolExecutor(8) as pool:
        for tick in range(ticks):
            time.sleep(max(0.0, started + tick / RATE - time.monotonic()))
            if tick == warm_up:
                rss["warm"] = rss_kb(stack.service.pid)
                redis_at["warm"] = namespace_figures(stack)
            pool.submit(traffic.send, tick)
    rss["end"] = rss_kb(stack.service.pid)
    with sdk_for(stack, key) as sdk:
        ends = Counter(wait_end(sdk, job_id) for job_id in traffic.jobs)
    kinds, memory = namespace_figures(stack)
    growth = (rss["end"] - rss["warm"]) / rss["warm"]
    requests = sum(traffic.counts.values())
    objects = traffic.counts["upload"] + traffic.counts["job"] + 1
    audit = kinds.pop("audit", 0)
    print(
        f"\nsoak {SOAK_SECONDS:.0f}s at {RATE}/s: {requests} requests {dict(traffic.counts)}, "
        f"errors {len(traffic.errors)}, jobs {dict(ends)}; service RSS "
        f"{rss['warm'] / 1024:.1f} MiB after warm-up -> {rss['end'] / 1024:.1f} MiB "
        f"({growth:+.1%}); namespace keys {sum(kinds.values()) + audit} "
        f"(warm-up {sum(redis_at['warm'][0].values())}), {memory / 1024:.0f} KiB "
        f"(warm-up {redis_at['warm'][1] / 1024:.0f} KiB), by kind {dict(kinds)}"
    )
    assert traffic.errors == []
    assert ends == {"succeeded": traffic.counts["job"]}
    assert growth < 0.10
    assert sum(kinds.values()) <= FIXED_KEYS + KEYS_PER_OBJECT * objects
    assert audit <= 2  # one stream per org (and the operator's)
