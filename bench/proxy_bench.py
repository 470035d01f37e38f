"""What the proxy costs: throughput and latency direct, through tunegate, and through LiteLLM's
proxy, all against the same minimal upstream on loopback; for chat completions, the Responses
API and embeddings (`--apis`).

The upstream is a raw-asyncio OpenAI-compatible server in its own process (canned chat
completions and responses, streamed or not, with usage; a 1536-dimension base64 embedding),
measured alone as "direct". tunegate runs as
`tunegate serve --workers 2` against a real Redis (db 14 of 127.0.0.1:6379) with an org whose
policy redacts PII and forces `store: false`; every call is authenticated, routed, redacted,
counted and audited. LiteLLM runs from its own virtualenv (`--litellm PATH`, see README.md)
with two workers. The load generator is raw asyncio HTTP/1.1 with keep-alive, so the figures
are the servers', not a client library's.

Per target, API and run: throughput at 32 concurrent connections (closed loop), and latency at
a fixed 10 requests/s (open loop): whole response, and for streams time to the first event and
to the end (embeddings do not stream). Targets are interleaved within each run; the table shows
medians over the runs, and tunegate's figures for each API beside its chat figures. LiteLLM is
measured on chat only. Nothing leaves 127.0.0.1, and every loop is bounded in count and time.

    python bench/proxy_bench.py [--runs 3] [--seconds 20] [--rate-requests 200]
                                [--litellm /tmp/litellm-venv] [--targets direct,tunegate,litellm]
                                [--apis chat,responses,embeddings]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
UPSTREAM_KEY = "sk-bench-upstream"
ADMIN_TOKEN = "tga_bench-admin-token-0123456789"
LITELLM_KEY = "sk-litellm-bench-master"
REDIS_URL = "redis://127.0.0.1:6379/14"  # BENCH_REDIS_URL to use another (it is flushed)
MODEL = "gpt-4o-mini"
PROMPT = "Summarise our refund policy for a customer who ordered twice. Keep it short."
START_TIMEOUT = 120.0
IDLE_REUSE_SECONDS = 1.0


# --- the upstream ------------------------------------------------------------------------------

CHOICE = {"index": 0, "message": {"role": "assistant", "content": "Refunds take five days."}}
USAGE = {"prompt_tokens": 24, "completion_tokens": 6, "total_tokens": 30}
COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{**CHOICE, "finish_reason": "stop", "logprobs": None}],
        "usage": USAGE,
    }
)


def _event(payload: dict[str, object]) -> bytes:
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _delta(content: str | None, finish: str | None = None, **more: object) -> bytes:
    delta = {"content": content} if content is not None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": MODEL}
    return _event({**head, "choices": [choice], **more})


WORDS = ["Refunds ", "take ", "five ", "days ", "after ", "we ", "receive ", "it."]
STREAM = b"".join(_delta(word) for word in WORDS) + _delta(None, "stop")
USAGE_EVENT = _event(
    {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "choices": [], "usage": USAGE}
)
DONE = b"%x\r\ndata: [DONE]\n\n\r\n0\r\n\r\n" % len(b"data: [DONE]\n\n")
END = b"0\r\n\r\n"

RESPONSE_USAGE = {
    "input_tokens": 24,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 6,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 30,
}
TEXT = "".join(WORDS)
MESSAGE = {
    "type": "message",
    "id": "msg_bench",
    "status": "completed",
    "role": "assistant",
    "content": [{"type": "output_text", "text": TEXT, "annotations": [], "logprobs": []}],
}
RESPONSE_OBJECT = {
    "id": "resp_bench",
    "object": "response",
    "created_at": 1_700_000_000,
    "status": "completed",
    "model": MODEL,
    "output": [MESSAGE],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "store": False,
    "usage": RESPONSE_USAGE,
}
RESPONSE = orjson.dumps(RESPONSE_OBJECT)


def _typed(kind: str, sequence: int, **fields: object) -> bytes:
    data = b"event: %s\ndata: %s\n\n" % (
        kind.encode(),
        orjson.dumps({"type": kind, "sequence_number": sequence, **fields}),
    )
    return b"%x\r\n%s\r\n" % (len(data), data)


def _response_events() -> bytes:
    running = {**RESPONSE_OBJECT, "status": "in_progress", "output": [], "usage": None}
    where = {"item_id": "msg_bench", "output_index": 0, "content_index": 0}
    part = MESSAGE["content"][0]  # type: ignore[index]
    steps: list[tuple[str, dict[str, object]]] = [
        ("response.created", {"response": running}),
        ("response.in_progress", {"response": running}),
        ("response.output_item.added", {"output_index": 0, "item": {**MESSAGE, "content": []}}),
        ("response.content_part.added", {**where, "part": {**part, "text": ""}}),
        *(("response.output_text.delta", {**where, "delta": w, "logprobs": []}) for w in WORDS),
        ("response.output_text.done", {**where, "text": TEXT, "logprobs": []}),
        ("response.content_part.done", {**where, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": MESSAGE}),
        ("response.completed", {"response": RESPONSE_OBJECT}),
    ]
    return b"".join(_typed(kind, i, **fields) for i, (kind, fields) in enumerate(steps)) + END


RESPONSE_STREAM = _response_events()
VECTOR = base64.b64encode(os.urandom(1536 * 4)).decode()
EMBEDDINGS = orjson.dumps(
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": VECTOR}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 16, "total_tokens": 16},
    }
)
JSON_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def upstream_answer(head: bytes, body: bytes) -> bytes:
    if not head.startswith(b"post"):
        return JSON_HEAD % 2 + b"{}"
    path = head.split(b" ", 2)[1]
    request = orjson.loads(body) if body else {}
    if path.endswith(b"/embeddings"):
        return JSON_HEAD % len(EMBEDDINGS) + EMBEDDINGS
    if path.endswith(b"/responses"):
        if request.get("stream"):
            return SSE_HEAD + RESPONSE_STREAM
        return JSON_HEAD % len(RESPONSE) + RESPONSE
    if not request.get("stream"):
        return JSON_HEAD % len(COMPLETION) + COMPLETION
    options = request.get("stream_options") or {}
    return SSE_HEAD + STREAM + (USAGE_EVENT if options.get("include_usage") else b"") + DONE


class UpstreamProtocol(asyncio.Protocol):
    """Keep-alive HTTP/1.1 with Content-Length bodies: all the clients here send."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.buffer = transport, b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = (
                int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                if b"content-length:" in head
                else 0
            )
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = (
                self.buffer[end + 4 : end + 4 + length],
                self.buffer[end + 4 + length :],
            )
            self.transport.write(upstream_answer(head, body))


async def serve_upstream(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(UpstreamProtocol, host, port)
    async with server:
        await server.serve_forever()


# --- the load generator ------------------------------------------------------------------------


CHAT_BODY: dict[str, object] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
APIS: dict[str, tuple[str, dict[str, object]]] = {
    "chat": (
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]},
    ),
    "responses": ("/v1/responses", {"model": MODEL, "input": PROMPT}),
    "embeddings": ("/v1/embeddings", {"model": "text-embedding-3-small", "input": PROMPT}),
}
STREAMING = ("chat", "responses")


@dataclass
class Target:
    name: str
    port: int
    path: str
    key: str
    api: str = "chat"

    def for_api(self, api: str) -> Target:
        return Target(self.name, self.port, APIS[api][0], self.key, api)

    def request(self, stream: bool) -> bytes:
        body = dict(APIS[self.api][1])
        if stream:
            body["stream"] = True
        payload = orjson.dumps(body)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode() + payload


@dataclass
class Timing:
    first: float  # seconds to the first body bytes
    total: float
    ok: bool


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> Timing:
    started = time.perf_counter()
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    ok = head.startswith(b"http/1.1 200")
    if b"transfer-encoding: chunked" in head:
        first = None
        while True:
            size = int((await reader.readline()).split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if first is None:
                first = time.perf_counter() - started
            if size == 0:
                break
        return Timing(first or 0.0, time.perf_counter() - started, ok)
    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    elapsed = time.perf_counter() - started
    return Timing(elapsed, elapsed, ok)


async def throughput(target: Target, stream: bool, seconds: float, connections: int) -> float:
    request, done, failed = target.request(stream), [0], [0]
    stop = time.perf_counter() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, target.port)
        try:
            while time.perf_counter() < stop:
                timing = await asyncio.wait_for(exchange(reader, writer, request), 30)
                done[0] += 1
                failed[0] += not timing.ok
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    if failed[0]:
        print(f"  ! {target.name}: {failed[0]} non-200 answers", file=sys.stderr)
    return (done[0] - failed[0]) / (time.perf_counter() - started)


async def latencies(target: Target, stream: bool, count: int, rate: float) -> list[Timing]:
    """Open loop: request i leaves at i / rate, whatever the earlier ones are doing. Idle
    connections are reused only while fresh: servers close kept-alive ones after a while."""
    request = target.request(stream)
    idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
    timings: list[Timing] = []

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while idle:
            used, reader, writer = idle.pop()
            if time.perf_counter() - used < IDLE_REUSE_SECONDS:
                return reader, writer
            writer.close()
        return await asyncio.open_connection(HOST, target.port)

    async def one() -> None:
        reader, writer = await connection()
        timings.append(await asyncio.wait_for(exchange(reader, writer, request), 30))
        idle.append((time.perf_counter(), reader, writer))

    started, tasks = time.perf_counter(), []
    for index in range(count):
        await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
        tasks.append(asyncio.ensure_future(one()))
    await asyncio.gather(*tasks)
    for _, _, writer in idle:
        writer.close()
    return timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass
class Figures:
    rps_json: list[float] = field(default_factory=list)
    rps_stream: list[float] = field(default_factory=list)
    json_ms: list[tuple[float, float]] = field(default_factory=list)
    first_ms: list[tuple[float, float]] = field(default_factory=list)
    stream_ms: list[tuple[float, float]] = field(default_factory=list)


def p50_p99(values: list[float]) -> tuple[float, float]:
    return percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000


async def measure(target: Target, figures: Figures, args: argparse.Namespace) -> None:
    await throughput(target, False, min(2.0, args.seconds), args.connections)  # warm up
    figures.rps_json.append(await throughput(target, False, args.seconds, args.connections))
    plain = await latencies(target, False, args.rate_requests, args.rate)
    figures.json_ms.append(p50_p99([t.total for t in plain]))
    if target.api not in STREAMING:
        return
    figures.rps_stream.append(await throughput(target, True, args.seconds, args.connections))
    streamed = await latencies(target, True, args.rate_requests, args.rate)
    figures.first_ms.append(p50_p99([t.first for t in streamed]))
    figures.stream_ms.append(p50_p99([t.total for t in streamed]))


async def paired(
    a: Target, b: Target, stream: bool, count: int, rate: float
) -> tuple[list[Timing], list[Timing]]:
    """Both targets at `rate` each, b's requests half an interval after a's: a machine whose
    load drifts during the run shifts both alike."""

    async def later() -> list[Timing]:
        await asyncio.sleep(0.5 / rate)
        return await latencies(b, stream, count, rate)

    first, second = await asyncio.gather(latencies(a, stream, count, rate), later())
    return first, second


def budget_cost(plain: Target, budgeted: Target, args: argparse.Namespace) -> str:
    """The budget's added p50 at the fixed rate, measured paired (see `paired`), per run."""
    head = f"budget's added p50 at {args.rate:g}/s, paired with the same gateway without one:"
    lines = ["", head]
    for stream, label, part in ((False, "json", "total"), (True, "stream 1st", "first")):
        added = []
        for _ in range(args.runs):
            ta, tb = asyncio.run(paired(plain, budgeted, stream, args.rate_requests, args.rate))
            p50 = [statistics.median(getattr(t, part) for t in ts) * 1000 for ts in (ta, tb)]
            added.append(p50[1] - p50[0])
        runs = ", ".join(f"{value:+.3f}" for value in added)
        lines.append(f"  {label:10} {statistics.median(added):+.3f} ms (runs: {runs})")
    return "\n".join(lines)


# --- the servers -------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not start within {START_TIMEOUT:.0f}s")


def answers(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


class Processes:
    """Children started by the bench, stopped by their own ids."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("ab") as out:
            self.started.append(
                subprocess.Popen(
                    argv,
                    env={**os.environ, **env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=log.parent,
                    start_new_session=True,
                )
            )

    def stop(self) -> None:
        for process in reversed(self.started):
            process.terminate()
        for process in self.started:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def start_tunegate(
    processes: Processes,
    upstream: int,
    folder: Path,
    name: str = "tunegate",
    path: str = "",
    budgets: dict[str, object] | None = None,
) -> Target:
    """`tunegate serve --workers 2`; `path` goes first on its PYTHONPATH (to try variants)."""
    port = free_port()
    env = {
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", REDIS_URL),
        "TUNEGATE_ADMIN_TOKEN": ADMIN_TOKEN,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "OPENAI_BASE_URL": f"http://{HOST}:{upstream}/v1",
        "TUNEGATE_DATA_DIR": str(folder / "data"),
        "TUNEGATE_LOG_FORMAT": "json",
    }
    argv = [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "2"]
    pythonpath = os.pathsep.join(part for part in (path, str(ROOT)) if part)
    processes.start(argv, {**env, "PYTHONPATH": pythonpath}, folder / f"{name}.log")
    url = f"http://{HOST}:{port}"
    wait_until(lambda: answers(f"{url}/health"), "tunegate")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    policy: dict[str, object] = {"pii": "redact", "force_store_false": True}
    if budgets is not None:
        policy["budgets"] = budgets
    org = httpx.post(f"{url}/admin/orgs", json={"name": "bench", "policy": policy}, headers=admin)
    org_id = org.json()["id"]
    key = httpx.post(
        f"{url}/admin/orgs/{org_id}/keys",
        json={"name": "bench", "role": "inference"},
        headers=admin,
    ).json()["key"]
    return Target(name, port, "/v1/chat/completions", key)


LITELLM_CONFIG = """model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: http://{host}:{upstream}/v1
      api_key: {key}
litellm_settings:
  telemetry: false
general_settings:
  master_key: {master}
"""


def start_litellm(processes: Processes, upstream: int, folder: Path, venv: Path) -> Target:
    port = free_port()
    config = folder / "litellm.yaml"
    config.write_text(
        LITELLM_CONFIG.format(
            model=MODEL, host=HOST, upstream=upstream, key=UPSTREAM_KEY, master=LITELLM_KEY
        )
    )
    env = {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
        "LITELLM_LOG": "ERROR",
        "NO_DOCS": "True",
    }
    argv = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", HOST]
    argv += ["--port", str(port), "--num_workers", "2", "--telemetry", "False"]
    processes.start(argv, env, folder / "litellm.log")
    headers = {"Authorization": f"Bearer {LITELLM_KEY}"}
    wait_until(lambda: answers(f"http://{HOST}:{port}/health/liveliness", headers), "litellm")
    return Target("litellm", port, "/v1/chat/completions", LITELLM_KEY)


# --- the table ---------------------------------------------------------------------------------


def _pair(values: list[tuple[float, float]]) -> str:
    if not values:
        return f"{'-':^15}"
    p50 = statistics.median(v[0] for v in values)
    p99 = statistics.median(v[1] for v in values)
    return f"{p50:6.2f} / {p99:6.2f}"


HEADER = (
    "target / api          | req/s c=32 | req/s c=32 | ms p50 / p99 @10/s, fixed rate"
    "                    | added\n"
    "                      |   (json)   |  (stream)  | json            | stream 1st"
    "      | stream end      | p50\n"
    "----------------------+------------+------------+-----------------+-----------------"
    "+-----------------+------"
)


def _rate(values: list[float]) -> str:
    return f"{statistics.median(values):10.0f}" if values else "         -"


def _added(results: dict[str, Figures], name: str) -> float | None:
    """Median p50 (json) through `name` less the same API's direct figure."""
    target, _, api = name.partition(" / ")
    direct = results.get(f"direct / {api}")
    if direct is None or target == "direct":
        return None
    base = statistics.median(v[0] for v in direct.json_ms)
    return statistics.median(v[0] for v in results[name].json_ms) - base


def table(results: dict[str, Figures]) -> str:
    lines = [HEADER]
    for name, figures in results.items():
        added = _added(results, name)
        lines.append(
            f"{name:21} | {_rate(figures.rps_json)} | {_rate(figures.rps_stream)} | "
            f"{_pair(figures.json_ms)} | {_pair(figures.first_ms)} | {_pair(figures.stream_ms)} "
            f"| {'' if added is None else f'{added:+.2f}'}"
        )
    return "\n".join(lines + beside_chat(results))


def beside_chat(results: dict[str, Figures]) -> list[str]:
    """tunegate's figures per API as a share of its chat figures (the target: within 10%)."""
    chat = results.get("tunegate / chat")
    if chat is None:
        return []
    lines = ["", "tunegate, beside chat: throughput (json, stream) and added p50 / p99 (json)"]
    chat_added = _added(results, "tunegate / chat")
    chat_p99 = statistics.median(v[1] for v in chat.json_ms)
    for name, figures in results.items():
        if not name.startswith("tunegate / ") or figures is chat:
            continue
        json_share = statistics.median(figures.rps_json) / statistics.median(chat.rps_json)
        stream = "-"
        if figures.rps_stream and chat.rps_stream:
            share = statistics.median(figures.rps_stream) / statistics.median(chat.rps_stream)
            stream = f"{share - 1:+.1%}"
        added = _added(results, name)
        p99 = statistics.median(v[1] for v in figures.json_ms)
        gap = "" if added is None or chat_added is None else f"{added - chat_added:+.2f} ms"
        lines.append(
            f"  {name.partition(' / ')[2]:10} throughput {json_share - 1:+.1%} json, {stream} "
            f"stream; added p50 {gap}, p99 {p99 - chat_p99:+.2f} ms"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--rate-requests", type=int, default=200)
    parser.add_argument("--targets", default="direct,tunegate,litellm")
    parser.add_argument("--apis", default="chat,responses,embeddings")
    parser.add_argument("--litellm", type=Path, default=Path("/tmp/litellm-venv"))
    parser.add_argument(
        "--budget",
        action="store_true",
        help="also measure tunegate with a budget on (`tunegate-budget`)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="also run tunegate with PATH first on its PYTHONPATH, as target NAME (with the "
        "budget on when --budget is given, to compare a change against `tunegate-budget`)",
    )
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        asyncio.run(serve_upstream(HOST, args.serve_upstream))
        return
    names = args.targets.split(",")
    processes, folder = Processes(), Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    try:
        upstream = free_port()
        processes.start(
            [sys.executable, __file__, "--serve-upstream", str(upstream)], {}, folder / "up.log"
        )
        wait_until(lambda: answers(f"http://{HOST}:{upstream}/health"), "upstream")
        targets = [Target("direct", upstream, "/v1/chat/completions", UPSTREAM_KEY)]
        redis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", REDIS_URL)).flushdb()
        if "tunegate" in names:
            targets.append(start_tunegate(processes, upstream, folder))
        # the same gateway with a budget no call reaches: its cost alone
        budget = {"monthly_usd": 1_000_000} if args.budget else None
        if budget is not None:
            targets.append(
                start_tunegate(processes, upstream, folder, "tunegate-budget", "", budget)
            )
            names.append("tunegate-budget")
        for variant in args.variant:
            name, _, path = variant.partition("=")
            targets.append(start_tunegate(processes, upstream, folder, name, path, budget))
            names.append(name)
        if "litellm" in names:
            targets.append(start_litellm(processes, upstream, folder, args.litellm))
        apis = args.apis.split(",")
        targets = [
            target.for_api(api)
            for target in targets
            if target.name in names
            for api in apis
            if target.name != "litellm" or api == "chat"
        ]
        results = {f"{t.name} / {t.api}": Figures() for t in targets}
        loads: list[float] = []
        for run in range(args.runs):
            # API by API, every target on one API before the next; the APIs' order turns each
            # run, so none is always measured first (or last) on a machine whose load drifts
            turn = apis[run % len(apis) :] + apis[: run % len(apis)]
            for target in sorted(targets, key=lambda t: turn.index(t.api)):
                name = f"{target.name} / {target.api}"
                print(f"run {run + 1}/{args.runs}: {name}", file=sys.stderr, flush=True)
                asyncio.run(measure(target, results[name], args))
            print(table(results), file=sys.stderr, flush=True)
            loads.append(os.getloadavg()[0])
        print(table(results))
        chats = {target.name: target for target in targets if target.api == "chat"}
        if "tunegate" in chats and "tunegate-budget" in chats:
            print(budget_cost(chats["tunegate"], chats["tunegate-budget"], args))
        print(
            f"(medians of {args.runs} runs; load average after each run: {loads}; logs in {folder})"
        )
    finally:
        processes.stop()


if __name__ == "__main__":
    main()
