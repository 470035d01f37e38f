"""`service.upstream.Upstream` against the sandbox over real HTTP, faults included."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
from sandbox_helpers import API_KEY, FAST, add_fault, chat_lines

from service.config import Settings
from service.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable
from service.sandbox import SandboxHandle, start_in_thread
from service.upstream import Upstream

T = TypeVar("T")
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}]}


def settings(sandbox: SandboxHandle, run: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "openai_api_key": API_KEY,
        "openai_base_url": sandbox.base_url_for(run),
        "upstream_timeout_seconds": 2.0,
        "upstream_max_retries": 0,
    }
    return Settings(**{**values, **overrides})


def using(config: Settings, use: Callable[[Upstream], Awaitable[T]], **options: int) -> T:
    async def main() -> T:
        async with Upstream.from_settings(config, **options) as upstream:
            return await use(upstream)

    return asyncio.run(main())


def test_small_and_multipart_uploads(
    sandbox: SandboxHandle, run: str, inspect: httpx2.Client, tmp_path: Path
) -> None:
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_bytes(chat_lines(10))
    big.write_bytes(chat_lines(40))

    async def upload(upstream: Upstream) -> list[Any]:
        one = await upstream.upload_file(small)
        parts = await upstream.upload_file(big, filename="dataset-1.jsonl")
        found = await upstream.find_file("dataset-1.jsonl")
        missing = await upstream.find_file("nope.jsonl")
        return [one, parts, found, missing, await upstream.file_content(parts.id)]

    config = settings(sandbox, run)
    one, parts, found, missing, content = using(
        config, upload, multipart_threshold=2000, part_size=1000
    )
    assert one.filename == "small.jsonl" and parts.filename == "dataset-1.jsonl"
    assert found is not None and found.id == parts.id and missing is None
    assert content == big.read_bytes()
    counts = inspect.get("/counts").json()["requests"]
    assert counts["POST /v1/files"] == 1 and counts["POST /v1/uploads"] == 1
    part_posts = sum(n for key, n in counts.items() if key.endswith("/parts"))
    assert part_posts == -(-big.stat().st_size // 1000)


def test_job_lifecycle(sandbox: SandboxHandle, run: str, tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_lines(12))

    async def lifecycle(upstream: Upstream) -> dict[str, Any]:
        file = await upstream.upload_file(data)
        job = await upstream.create_job(
            model="gpt-4o-mini", training_file=file.id, suffix=None, metadata={"tg": "j1"}
        )
        other = await upstream.create_job(model="gpt-4o-mini", training_file=file.id)
        paused = await upstream.pause_job(other.id)
        resumed = await upstream.resume_job(other.id)
        cancelled = await upstream.cancel_job(other.id)
        while (await upstream.retrieve_job(job.id)).status != "succeeded":
            await asyncio.sleep(0.02)
        first_page, more = await upstream.list_events(job.id, limit=2)
        return {
            "listed": await upstream.list_jobs(metadata={"tg": "j1"}),
            "statuses": (paused.status, resumed.status, cancelled.status),
            "events": await upstream.events_since(job.id, None, page_size=5),
            "newer": await upstream.events_since(job.id, first_page[1]["id"]),
            "more": more,
            "checkpoints": await upstream.list_checkpoints(job.id),
            "job": await upstream.retrieve_job(job.id),
        }

    found = using(settings(sandbox, run), lifecycle)
    job = found["job"]
    assert [j.id for j in found["listed"]] == [job.id]
    assert found["statuses"][0] == "paused" and found["statuses"][2] == "cancelled"
    events = found["events"]
    assert events[0]["message"].startswith("Created")
    assert events[-1]["message"].endswith("completed")
    assert [e["id"] for e in found["newer"]] == [events[-1]["id"]] and found["more"]
    assert len(found["checkpoints"]) == job.hyperparameters.n_epochs

    async def clean_up(upstream: Upstream) -> tuple[bool, Any]:
        model = await upstream.retrieve_model(job.fine_tuned_model)
        return await upstream.delete_model(model.id), await upstream.delete_file(job.training_file)

    assert using(settings(sandbox, run), clean_up) == (True, True)


def test_completion_passthrough(sandbox: SandboxHandle, run: str, inspect: httpx2.Client) -> None:
    async def complete(upstream: Upstream) -> tuple[Any, list[bytes]]:
        answer = await upstream.post_completion("/chat/completions", CHAT)
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        async with await upstream.stream_completion("/chat/completions", body) as stream:
            assert stream.status == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            chunks = [chunk async for chunk in stream]
        return answer, chunks

    answer, chunks = using(settings(sandbox, run), complete)
    assert answer.status == 200 and set(answer.headers) <= {"content-type", "openai-processing-ms"}
    data = answer.json()
    assert data["choices"][0]["message"]["content"].endswith("one two three")
    stream_text = b"".join(chunks)
    assert stream_text.count(b"data: ") >= 8 and stream_text.endswith(b"data: [DONE]\n\n")
    assert b'"usage":{"prompt_tokens"' in stream_text
    (entry, _) = inspect.get("/requests").json()["data"]
    assert entry["body"] == CHAT
    assert entry["headers"].get("content-type") == "application/json"


def test_stopping_early_closes_the_upstream_stream() -> None:
    """The answer takes 20 s to stream; leaving after the first chunk must not wait for it."""
    handle = start_in_thread(FAST.model_copy(update={"stream_delay_seconds": 0.05}))
    body = {**CHAT, "stream": True, "messages": [{"role": "user", "content": "w " * 400}]}

    async def first_chunk_then_leave(upstream: Upstream) -> tuple[bytes, float]:
        stream = await upstream.stream_completion("/chat/completions", body)
        started = time.monotonic()
        async for chunk in stream:
            await stream.aclose()
            return chunk, time.monotonic() - started
        raise AssertionError("no chunk")

    try:
        chunk, elapsed = using(settings(handle, "leave-early"), first_chunk_then_leave)
    finally:
        handle.stop()
    assert chunk.startswith(b"data: ") and elapsed < 10.0


def test_sdk_retries_two_429s_then_succeeds(
    sandbox: SandboxHandle, run: str, inspect: httpx2.Client
) -> None:
    add_fault(inspect, kind="429", path_prefix="/v1/chat", count=2, retry_after=0.01)
    answer = using(
        settings(sandbox, run, upstream_max_retries=2),
        lambda up: up.post_completion("/chat/completions", CHAT),
    )
    assert answer.status == 200
    statuses = [e["status"] for e in inspect.get("/requests").json()["data"]]
    assert statuses == [429, 429, 200]


def test_creates_are_never_retried_blindly(
    sandbox: SandboxHandle, run: str, inspect: httpx2.Client, tmp_path: Path
) -> None:
    """A create whose answer is lost may still have been made: the caller looks before it tries
    again, so the client itself sends each create once, whatever its retry setting."""
    data = tmp_path / "train.jsonl"
    data.write_bytes(chat_lines(12))
    file_id = using(settings(sandbox, run), lambda up: up.upload_file(data)).id
    add_fault(inspect, kind="503", path_prefix="/v1/fine_tuning/jobs", count=1)
    add_fault(inspect, kind="503", path_prefix="/v1/files", count=1)
    retrying = settings(sandbox, run, upstream_max_retries=2)
    with pytest.raises(UpstreamUnavailable):
        using(retrying, lambda up: up.create_job(model="gpt-4o-mini", training_file=file_id))
    with pytest.raises(UpstreamUnavailable):
        using(retrying, lambda up: up.upload_file(data))
    counts = inspect.get("/counts").json()["requests"]
    assert counts["POST /v1/fine_tuning/jobs"] == 1 and counts["POST /v1/files"] == 2
    add_fault(inspect, kind="503", path_prefix="/v1/fine_tuning/jobs", count=1)
    assert len(using(retrying, lambda up: up.list_jobs())) == 0  # reads are still retried


def test_rate_limit_past_retries_is_rejected_with_retry_after(
    sandbox: SandboxHandle, run: str, inspect: httpx2.Client
) -> None:
    add_fault(inspect, kind="429", path_prefix="/v1/chat", count=3, retry_after=0.01)
    with pytest.raises(UpstreamRejected) as caught:
        using(
            settings(sandbox, run, upstream_max_retries=1),
            lambda up: up.post_completion("/chat/completions", CHAT),
        )
    assert caught.value.status == 429 and caught.value.code == "rate_limit_exceeded"
    assert caught.value.extra == {"retry_after": 1.0}


def test_persistent_500_is_unavailable(
    sandbox: SandboxHandle, run: str, inspect: httpx2.Client
) -> None:
    add_fault(inspect, kind="500", path_prefix="/v1/files", count=2, retry_after=0.01)
    with pytest.raises(UpstreamUnavailable):
        using(settings(sandbox, run, upstream_max_retries=1), lambda up: up.list_files())


def test_hang_past_the_timeout_is_a_timeout(
    sandbox: SandboxHandle, run: str, inspect: httpx2.Client
) -> None:
    add_fault(inspect, kind="hang", seconds=10, path_prefix="/v1/chat")
    with pytest.raises(UpstreamTimeout):  # the client's 0.3 s timeout, not the 10 s hang's end
        using(
            settings(sandbox, run, upstream_timeout_seconds=0.3),
            lambda up: up.post_completion("/chat/completions", CHAT),
        )


def test_dropped_connection_is_unavailable_and_retried(
    sandbox: SandboxHandle, run: str, inspect: httpx2.Client
) -> None:
    add_fault(inspect, kind="drop", path_prefix="/v1/models", count=1)
    with pytest.raises(UpstreamUnavailable):
        using(settings(sandbox, run), lambda up: up.retrieve_model("gpt-4o-mini"))
    add_fault(inspect, kind="drop", path_prefix="/v1/models", count=1)
    model = using(
        settings(sandbox, run, upstream_max_retries=1),
        lambda up: up.retrieve_model("gpt-4o-mini"),
    )
    assert model.id == "gpt-4o-mini"


def test_rejections_keep_status_param_and_code(sandbox: SandboxHandle, run: str) -> None:
    bad = {**CHAT, "model": "gpt-unknown"}
    with pytest.raises(UpstreamRejected) as caught:
        using(settings(sandbox, run), lambda up: up.post_completion("/chat/completions", bad))
    assert caught.value.status == 404
    assert (caught.value.param, caught.value.code) == ("model", "model_not_found")
    with pytest.raises(UpstreamRejected) as missing:
        using(
            settings(sandbox, run),
            lambda up: up.create_job(model="gpt-4o-mini", training_file="file-x"),
        )
    assert missing.value.status == 400 and missing.value.param == "training_file"


def test_a_wrong_upstream_key_is_our_problem_not_the_callers(
    sandbox: SandboxHandle, run: str
) -> None:
    config = settings(sandbox, run, openai_api_key="sk-not-the-key")
    with pytest.raises(UpstreamUnavailable):
        using(config, lambda up: up.list_files())


def test_settings_without_a_key_are_refused() -> None:
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        Upstream.from_settings(Settings(openai_api_key=None))


def test_chunks_arrive_as_the_sandbox_sends_them() -> None:
    handle = start_in_thread(FAST.model_copy(update={"stream_delay_seconds": 0.05}))
    body = {**CHAT, "stream": True}

    async def arrival_times(upstream: Upstream) -> list[float]:
        started, times = time.monotonic(), []
        async with await upstream.stream_completion("/chat/completions", body) as stream:
            async for _ in stream:
                times.append(time.monotonic() - started)
        return times

    try:
        times = using(settings(handle, "paced"), arrival_times)
    finally:
        handle.stop()
    assert len(times) >= 5
    assert times[-1] - times[0] >= 0.2
