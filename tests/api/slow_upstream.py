"""A slow streaming upstream: chat completion chunks `interval` seconds apart, on loopback.

It records, per request, how many events it sent and whether the peer left before the end, so
a test can see that a departed client's upstream stream was closed.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import orjson

USAGE = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}


@dataclass
class Served:
    sent: int = 0
    left_early: bool = False
    done: bool = False


def _event(payload: object) -> bytes:
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _chunk(index: int) -> bytes:
    choice = {"index": 0, "delta": {"content": f"w{index} "}, "finish_reason": None}
    return _event({"object": "chat.completion.chunk", "model": "slow", "choices": [choice]})


@dataclass
class SlowUpstream:
    events: int = 20
    interval: float = 0.05
    served: list[Served] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> SlowUpstream:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(5), "slow upstream did not start"
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = orjson.loads(await reader.readexactly(length))
            await self._stream(reader, writer, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: dict[str, object]
    ) -> None:
        served = Served()
        self.served.append(served)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        )
        for index in range(self.events):
            await asyncio.sleep(self.interval)
            if reader.at_eof():
                served.left_early = True
                return
            served.sent += 1  # counted before it leaves: a client that got it sees it counted
            writer.write(_chunk(index))
            await writer.drain()
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            writer.write(_event({"object": "chat.completion.chunk", "choices": [], "usage": USAGE}))
        writer.write(b"%x\r\ndata: [DONE]\n\n\r\n0\r\n\r\n" % len(b"data: [DONE]\n\n"))
        await writer.drain()
        served.done = True
