"""A bounded load on loopback: 2,000 mixed calls (streamed and not, chat and legacy, base and
tuned models) from 50 concurrent clients to `tunegate serve --workers 2`, with no error and
usage counters exactly equal to the sum of what the upstream reported.

The served processes use the test Redis (a namespace of their own), as `--workers` does in
production, and the proxy tests' sandbox run as their upstream. A fakeredis inside the test
process would answer them only when the test process gets the CPU, so a busy machine would turn
its slowness into 503s. The clients speak HTTP/1.1 on raw asyncio streams, so the test measures
the gateway rather than a client library.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.api.conftest import ADMIN_TOKEN, UPSTREAM_KEY
from tests.api.proxy_helpers import BASE_MODEL, Proxy, eventually, proxy, tuned_model, upstream
from tests.conftest import purge_namespace
from tests.support import ROOT, free_port, stop_process, tunegate_process, wait_for

__all__ = ["proxy", "tuned_model", "upstream"]

CALLS = 2_000
CLIENTS = 50
DEADLINE_SECONDS = 120
MODES: list[dict[str, Any]] = [
    {},
    {"stream": True},
    {"stream": True, "stream_options": {"include_usage": True}},
]
REGISTER = """
import asyncio, sys
from service.operations.inference.models import register_tuned_model
from service.store import Store, keys

async def register(url, namespace, org_id, model_id, base_model):
    keys.use_namespace(namespace)
    store = Store(url)
    try:
        await register_tuned_model(store, org_id, model_id, base_model, "ftjob-test")
    finally:
        await store.aclose()

asyncio.run(register(*sys.argv[1:]))
"""


@dataclass
class Served:
    """`tunegate serve --workers 2` on `port`, its keys under `namespace` in `redis_url`."""

    port: int
    redis_url: str
    namespace: str

    def http(self, key: str = ADMIN_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=headers, timeout=30)

    def org(self, policy: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"name": "load-org", **({"policy": policy} if policy else {})}
        with self.http() as admin:
            response = admin.post("/admin/orgs", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def key(self, org_id: str, role: str = "member") -> str:
        with self.http() as admin:
            response = admin.post(f"/admin/orgs/{org_id}/keys", json={"name": "t", "role": role})
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    def register(self, org_id: str, model_id: str) -> None:
        """Register a tuned model for an org, as the jobs feature does when a job succeeds (in a
        process of its own: the store's namespace is process-wide)."""
        arguments = [self.redis_url, self.namespace, org_id, model_id, BASE_MODEL]
        subprocess.run([sys.executable, "-c", REGISTER, *arguments], cwd=ROOT, check=True)

    def usage(self, key: str, **params: Any) -> list[dict[str, Any]]:
        with self.http(key) as http:
            response = http.get("/v1/usage", params=params)
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["data"]
        return rows


@pytest.fixture(scope="module")
def served(
    proxy: Proxy, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """`tunegate serve --workers 2` on the test Redis, upstream the proxy tests' sandbox run."""
    port, folder = free_port(), tmp_path_factory.mktemp("served")
    namespace = f"t{secrets.token_hex(5)}"
    env = {
        "REDIS_URL": redis_url,
        "TUNEGATE_REDIS_NAMESPACE": namespace,
        "TUNEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": proxy.gateway.sandbox.base_url_for(proxy.run),
        "TUNEGATE_PORT": str(port),
        "TUNEGATE_DATA_DIR": str(folder / "data"),
        "TUNEGATE_LOG_LEVEL": "warning",
        "TUNEGATE_LOG_FORMAT": "json",
    }
    process = tunegate_process(["serve", "--workers", "2"], env, folder / "serve.log")
    try:
        wait_for(lambda: _healthy(port), timeout=90, what="tunegate serve --workers 2")
        yield Served(port, redis_url, namespace)
    finally:
        stop_process(process)
        purge_namespace(redis_url, namespace)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def variants(tuned: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, body) of every kind of call the load mixes; streams are added per call."""
    chats = [
        ("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": text}]})
        for model in ("gpt-4o-mini", tuned)
        for text in ("short one", "a somewhat longer question about the weather today")
    ]
    legacy = ("/v1/completions", {"model": "davinci-002", "prompt": "once upon", "max_tokens": 5})
    return [*chats, legacy]


def calibrate(
    served: Served, key: str, kinds: list[tuple[str, dict[str, Any]]]
) -> list[tuple[int, int]]:
    """What the upstream reports for each variant (its answers are deterministic)."""
    with served.http(key) as http:
        usages = [http.post(path, json=body).json()["usage"] for path, body in kinds]
    return [(usage["prompt_tokens"], usage["completion_tokens"]) for usage in usages]


def request(port: int, key: str, path: str, body: dict[str, Any]) -> bytes:
    payload = orjson.dumps(body)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> bytes:
    """One request on a kept-alive connection; the body (de-chunked). Fails on a non-200."""
    writer.write(raw)
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    assert head.startswith(b"http/1.1 200"), head
    if b"transfer-encoding: chunked" not in head:
        return await reader.readexactly(int(head.split(b"content-length:")[1].split(b"\r\n")[0]))
    parts = []
    while size := int((await reader.readline()).split(b";")[0], 16):
        parts.append((await reader.readexactly(size + 2))[:-2])
    await reader.readexactly(2)
    return b"".join(parts)


def check(body: bytes, stream: bool) -> None:
    if not stream:
        assert orjson.loads(body)["usage"]["total_tokens"] > 0
        return
    assert body.endswith(b"data: [DONE]\n\n") and b'"error"' not in body


async def drive(port: int, plan: list[tuple[bytes, bool]]) -> None:
    calls = iter(plan)

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for raw, stream in calls:
                check(await exchange(reader, writer, raw), stream)
        finally:
            writer.close()

    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(CLIENTS))), DEADLINE_SECONDS)


@pytest.mark.integration
def test_two_thousand_mixed_calls_from_fifty_clients(
    upstream: Proxy, tuned_model: str, served: Served
) -> None:
    org_id = served.org()
    key = served.key(org_id, "admin")
    served.register(org_id, tuned_model)
    kinds = variants(tuned_model)
    expected = calibrate(served, served.key(org_id), kinds)

    plan: list[tuple[bytes, bool]] = []
    prompt_total = completion_total = 0
    for index, mode in zip(range(CALLS), itertools.cycle(MODES), strict=False):
        path, body = kinds[index % len(kinds)]
        plan.append((request(served.port, key, path, {**body, **mode}), bool(mode)))
        prompt_total += expected[index % len(kinds)][0]
        completion_total += expected[index % len(kinds)][1]

    started = time.perf_counter()
    asyncio.run(drive(served.port, plan))
    elapsed = time.perf_counter() - started

    def totals() -> dict[str, Any] | None:
        rows = served.usage(key, group_by="key")
        mine = [row for row in rows if row["key_id"] == key.split("_")[1]]
        return mine[0] if mine and mine[0]["requests"] == CALLS else None

    row = eventually(totals, timeout=10)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt_total, completion_total)
    print(f"\n{CALLS} calls from {CLIENTS} clients in {elapsed:.1f}s ({CALLS / elapsed:.0f}/s)")


@pytest.mark.integration
def test_rate_limits_hold_across_processes(upstream: Proxy, served: Served) -> None:
    key = served.key(served.org({"rate_limits": {"requests_per_minute": 15}}))
    raw = request(served.port, key, *variants("unused")[0])
    statuses: list[bytes] = []

    async def client() -> None:
        for _ in range(2):  # a new connection per call spreads them over both processes
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(raw)
            statuses.append((await reader.readuntil(b"\r\n\r\n"))[9:12])
            writer.close()

    async def clients() -> None:
        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(20))), 30)

    started = time.monotonic()
    asyncio.run(clients())
    refilled = int((time.monotonic() - started) / 4)  # one request back every 4 s
    allowed = statuses.count(b"200")
    assert 15 <= allowed <= 15 + refilled
    assert statuses.count(b"429") == 40 - allowed


def test_several_processes_need_a_shared_redis(tmp_path: Path) -> None:
    env = {"TUNEGATE_ADMIN_TOKEN": ADMIN_TOKEN, "TUNEGATE_DATA_DIR": str(tmp_path)}
    process = tunegate_process(["serve", "--workers", "2"], env, tmp_path / "serve.log")
    try:
        assert process.wait(timeout=30) == 2
    finally:
        stop_process(process)
    assert "--workers needs REDIS_URL" in (tmp_path / "serve.log").read_text()
