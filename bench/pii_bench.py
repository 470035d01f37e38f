"""PII scan: throughput by size and kind of text, /health under hostile load, and the cost of
scanning everything the model reads on an ordinary request.

1. Throughput of `pii.detect` (no budget: the detector alone) on ordinary chat text and on the
   worst cases (dense phone numbers, dense e-mail addresses, dense distinct phone numbers) at
   1 KB, 100 KB, 1 MB and 10 MB, with the 10 MB / 1 MB time ratio (10 means linear).
2. `/health` latency (p50, p99, max) from one client while eight clients each send 1 MB
   worst-case bodies to an embedded `tunegate serve` whose org blocks PII.
3. The added cost per ordinary chat request of walking the whole body (`scan_json`) against
   scanning only the message contents, as the first release did.

    .venv/bin/python bench/pii_bench.py            # all three
    .venv/bin/python bench/pii_bench.py --only 1   # one part
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.domain.inference.request import scan_json
from service.domain.pii import detect as pii
from service.domain.tenancy.policy import Policy

KB, MB = 1024, 1024 * 1024
ORDINARY = (
    "Thanks for getting back to me. The order arrived on Tuesday but the box was damaged, "
    "and two of the glasses inside were cracked. Could you send replacements or refund them? "
)


def distinct_phones(size: int) -> str:
    parts, total, n = [], 0, 0
    while total < size:
        part = f"call {200 + n % 700:03d} {200 + (n // 700) % 700:03d} {n % 10_000:04d} now "
        parts.append(part)
        total += len(part)
        n += 1
    return "".join(parts)[:size]


TEXTS = {
    "ordinary chat": lambda size: (ORDINARY * (size // len(ORDINARY) + 1))[:size],
    "dense phones": lambda size: ("call 415 555 2671 now " * (size // 22 + 1))[:size],
    "dense distinct phones": distinct_phones,
    "dense e-mails": lambda size: ("mail bob.smith@example.com ok " * (size // 30 + 1))[:size],
}
SIZES = {"1 KB": KB, "100 KB": 100 * KB, "1 MB": MB, "10 MB": 10 * MB}


def throughput() -> None:
    print("1. pii.detect throughput (MB/s; one core; no budget)")
    print(f"   {'text':<22}" + "".join(f"{name:>10}" for name in SIZES) + "   10MB/1MB time")
    for name, make in TEXTS.items():
        seconds = {}
        for label, size in SIZES.items():
            text = make(size)
            repeat = max(1, MB // size)
            started = time.process_time()
            for _ in range(repeat):
                pii.detect(text)
            seconds[label] = (time.process_time() - started) / repeat
        rates = "".join(f"{SIZES[k] / MB / max(v, 1e-9):10.1f}" for k, v in seconds.items())
        print(f"   {name:<22}{rates}   {seconds['10 MB'] / seconds['1 MB']:.1f}x")


def _serve(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port = 18000 + os.getpid() % 1000
    token = "tga_bench-admin-token-0123456789abcdef"
    env = {
        **os.environ,
        "TUNEGATE_PORT": str(port),
        "TUNEGATE_ADMIN_TOKEN": token,
        "TUNEGATE_DATA_DIR": str(tmp / "data"),
        "TUNEGATE_LOG_LEVEL": "warning",
    }
    env.pop("REDIS_URL", None)
    env.pop("OPENAI_API_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url, token
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("tunegate serve did not start")


def _hammer(url: str, key: str, body: dict[str, Any], stop: Any, statuses: Any) -> None:
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        while not stop.is_set():
            statuses.put(client.post(f"{url}/v1/chat/completions", json=body).status_code)


def health_under_load(seconds: float = 20.0) -> None:
    print("2. /health latency while 8 clients send 1 MB worst-case bodies (org blocks PII)")
    with tempfile.TemporaryDirectory() as tmp:
        process, url, token = _serve(Path(tmp))
        try:
            admin = {"Authorization": f"Bearer {token}"}
            org = httpx.post(
                f"{url}/admin/orgs",
                json={"name": "bench", "policy": {"pii": "block"}},
                headers=admin,
            ).json()["id"]
            key = httpx.post(
                f"{url}/admin/orgs/{org}/keys",
                json={"name": "b", "role": "inference"},
                headers=admin,
            ).json()["key"]
            body = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": TEXTS["dense distinct phones"](MB)}],
            }
            # The hostile clients are processes of their own, so their work never delays the
            # probe's own measurement in this process.
            stop = multiprocessing.Event()
            statuses = multiprocessing.Queue()
            clients = [
                multiprocessing.Process(target=_hammer, args=(url, key, body, stop, statuses))
                for _ in range(8)
            ]
            for client in clients:
                client.start()
            latencies: list[float] = []
            deadline = time.monotonic() + seconds
            with httpx.Client(timeout=30) as probe:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    probe.get(f"{url}/health")
                    latencies.append((time.perf_counter() - started) * 1000)
                    time.sleep(0.01)
            stop.set()
            for client in clients:
                client.join()
            answered = [statuses.get() for _ in range(statuses.qsize())]
        finally:
            process.terminate()
            process.wait(30)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"   {len(latencies)} probes: p50 {statistics.median(latencies):.1f} ms, "
        f"p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms; "
        f"{len(answered)} hostile requests answered {sorted(set(answered))}"
    )


def ordinary_request_cost(rounds: int = 20_000) -> None:
    print("3. Scan cost of an ordinary chat request (redact, all entities)")
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a helpful support assistant for Acme."},
            {"role": "user", "content": ORDINARY},
        ],
        "temperature": 0.2,
        "max_tokens": 200,
    }
    policy = Policy()
    entities = tuple(policy.pii_entities)

    def contents_only() -> None:
        for message in body["messages"]:
            pii.redact(message["content"], entities)

    def whole_body() -> None:
        scan_json(body, policy, None, param="messages")

    figures = {}
    for name, run in (("message contents only", contents_only), ("whole body", whole_body)):
        started = time.perf_counter()
        for _ in range(rounds):
            run()
        figures[name] = (time.perf_counter() - started) / rounds * 1e6
        print(f"   {name:<22} {figures[name]:7.1f} µs per request")
    added = figures["whole body"] - figures["message contents only"]
    print(f"   added by the whole-body walk: {added:.1f} µs per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["1", "2", "3"])
    args = parser.parse_args()
    parts = {"1": throughput, "2": health_under_load, "3": ordinary_request_cost}
    for key, part in parts.items():
        if args.only in (None, key):
            part()


if __name__ == "__main__":
    main()
