"""Small chat completions per second the sandbox serves on loopback.

Runs the sandbox in its own process and drives it from this one with a lean keep-alive
HTTP/1.1 load generator (raw asyncio streams), so the figure is the server's, not a client
library's.

    python bench/sandbox_throughput.py [--seconds 5] [--connections 32] [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import time

import orjson

from service.sandbox import SandboxConfig, serve

KEY = "sk-bench"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(port: int, stream: bool) -> bytes:
    body = orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "ping from the benchmark"}],
            "stream": stream,
        }
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        while True:
            size = int((await reader.readline()).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                return
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)


async def _worker(port: int, payload: bytes, stop: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.perf_counter() < stop:
        writer.write(payload)
        await _read_response(reader)
        counts[0] += 1
    writer.close()
    await writer.wait_closed()


async def _drive(port: int, seconds: float, connections: int, stream: bool) -> float:
    payload, counts = _request(port, stream), [0]
    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(_worker(port, payload, stop, counts) for _ in range(connections)))
    return counts[0] / (time.perf_counter() - started)


async def _wait_until_up(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError("sandbox did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    port = _free_port()
    server = multiprocessing.Process(
        target=serve, args=(SandboxConfig(api_key=KEY), "127.0.0.1", port), daemon=True
    )
    server.start()
    try:
        asyncio.run(_wait_until_up(port))
        asyncio.run(_drive(port, 1.0, args.connections, args.stream))
        rate = asyncio.run(_drive(port, args.seconds, args.connections, args.stream))
        kind = "streamed" if args.stream else "small"
        print(f"{rate:,.0f} {kind} chat completions/s over {args.connections} connections")
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
