"""The upstream client, and the only module that imports `openai`.

`Upstream` wraps one `AsyncOpenAI` client built from Settings: explicit connect and read
timeouts, and the SDK's own retries (`max_retries`; it retries 408/409/429/5xx and connection
failures with backoff and honours `Retry-After`), so nothing here retries again. Job creates
and single-request uploads are not retried at all (see `create_job`). Workers run the same async
methods under `asyncio.run`; an `Upstream` (its connection pool) belongs to the event loop that
first uses it, so make one per loop. Every failure leaves as a
`service.errors.UpstreamError` (see `map_error`), never as an SDK exception.

The proxy's hot path (`forward` and `forward_stream`, for every proxied API: chat and legacy
completions, Responses and its stored responses, embeddings, moderations) does not go through
the SDK: per call the SDK's request building and httpx's pure-Python HTTP cost about as much
CPU as everything else tunegate does for a completion. It sends pre-encoded JSON through one
keep-alive aiohttp connection pool per event loop (`CompletionPool`) and hands back raw bytes,
with the SDK's retry policy (408/409/429/5xx and connection failures, backoff, `Retry-After`)
and the same error mapping. Only the upstream key is sent: callers cannot add headers. The
SDK's response types are re-exported here for the layers that read them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import random
import re
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import aiohttp
import anyio
import httpx2
import openai
import orjson
from openai.types import FileObject, FilePurpose, Model
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from service.config import Settings
from service.domain.health import UpstreamReach
from service.errors import (
    TunegateError,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "Completion",
    "CompletionStream",
    "FileObject",
    "FilePurpose",
    "FineTuningJob",
    "FineTuningJobCheckpoint",
    "FineTuningJobEvent",
    "Model",
    "Upstream",
    "map_error",
]

T = TypeVar("T")
CompletionPath = Literal["/chat/completions", "/completions"]
Query = list[tuple[str, str]]
MULTIPART_THRESHOLD = 32 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
JSONL_MIME = "text/jsonl"
KEPT_HEADERS = ("content-type", "openai-processing-ms")
RETRIED_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_AFTER_SECONDS = 60.0
POOL_CONNECTIONS = 1000
# Upstream identifiers a client must not see: keys, org / project / user ids, request ids.
UPSTREAM_SECRETS = re.compile(
    r"\b(?:sk|rk|sess)-[\w*.-]+|\b(?:org|user)-[A-Za-z0-9]+|\b(?:proj|req)_[A-Za-z0-9]+"
)


def _scrub(message: str) -> str:
    return UPSTREAM_SECRETS.sub("[redacted]", message)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers.get("retry-after", ""))
    except ValueError:
        return None


def _status_error(error: openai.APIStatusError) -> TunegateError:
    body = error.body if isinstance(error.body, dict) else {}
    return rejection(error.status_code, body, error.response.headers)


def rejection(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> TunegateError:
    """The domain error for an upstream error answer (`body`: OpenAI's `error` object)."""
    if status >= 500 or status == 401:
        return UpstreamUnavailable(
            f"Upstream failed with status {status}", extra={"status": status}
        )
    if status == 408:
        return UpstreamTimeout("Upstream timed out the request")
    message = body.get("message")
    text = _scrub(message) if isinstance(message, str) and message else "Upstream rejected it"
    retry_after = _retry_after(headers) if status == 429 else None
    extra = {"retry_after": retry_after} if retry_after is not None else {}
    param, code = body.get("param"), body.get("code")
    return UpstreamRejected(
        text,
        status=status,
        param=param if isinstance(param, str) else None,
        code=code if isinstance(code, str) else None,
        extra=extra,
    )


def map_error(error: BaseException) -> TunegateError:
    """The domain error for an SDK or transport failure.

    4xx -> `UpstreamRejected` (status, scrubbed message, param, code; `extra["retry_after"]`
    seconds on a 429); 5xx, and 401 (our own key is wrong: the caller's request is not at
    fault) -> `UpstreamUnavailable`; 408 and timeouts -> `UpstreamTimeout`; connection
    failures -> `UpstreamUnavailable`.
    """
    if isinstance(error, TunegateError):
        return error
    if isinstance(error, openai.APIStatusError):
        return _status_error(error)
    if isinstance(error, (openai.APITimeoutError, httpx2.TimeoutException, TimeoutError)):
        return UpstreamTimeout("Upstream did not answer in time")
    if isinstance(error, (openai.APIConnectionError, httpx2.TransportError, aiohttp.ClientError)):
        return UpstreamUnavailable("Could not reach the upstream")
    return UpstreamError("Upstream call failed")


async def _guard(call: Awaitable[T]) -> T:
    try:
        return await call
    except (openai.OpenAIError, httpx2.HTTPError) as error:
        raise map_error(error) from error


def _kept(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in KEPT_HEADERS if name in headers}


def _encode(body: Mapping[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else orjson.dumps(body)


@dataclass(frozen=True)
class Completion:
    """A non-streamed completion: status, kept headers, raw JSON bytes."""

    status: int
    headers: dict[str, str]
    content: bytes
    request_id: str | None = field(default=None, repr=False)

    def json(self) -> Any:
        return orjson.loads(self.content)


class CompletionStream:
    """A streamed completion: iterate for raw SSE bytes as they arrive. Use `async with` (or
    `aclose()`) so that a caller who stops early, e.g. on a client disconnect, closes the
    upstream stream (its connection is dropped, not returned to the pool half-read)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.status = response.status
        self.headers = _kept(response.headers)
        self.request_id = response.headers.get("x-request-id")
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as error:
            raise map_error(error) from error
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()

    async def __aenter__(self) -> CompletionStream:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """The SDK's backoff: the upstream's `Retry-After` when it is sane, else 0.5 s doubling per
    attempt up to 8 s, less up to a quarter of jitter."""
    if retry_after is not None and 0 <= retry_after <= MAX_RETRY_AFTER_SECONDS:
        return retry_after
    return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())


def is_retried(status: int) -> bool:
    return status in RETRIED_STATUSES or status >= 500


class CompletionPool:
    """The completion proxy's keep-alive connection pool to the upstream: one per event loop,
    opened on first use. Retries what the SDK retries, at most `max_retries` times."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.base_url = str(client.base_url).rstrip("/")
        self.max_retries = client.max_retries
        timeout = client.timeout
        read = timeout.read if isinstance(timeout, httpx2.Timeout) else timeout
        connect = timeout.connect if isinstance(timeout, httpx2.Timeout) else timeout
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect if isinstance(connect, float | int) else None,
            sock_read=read if isinstance(read, float | int) else None,
        )
        self.headers = {
            "Authorization": f"Bearer {client.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"tunegate (openai-python {openai.__version__} compatible)",
        }
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=POOL_CONNECTIONS),
                timeout=self.timeout,
                headers=self.headers,
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        path: str,
        content: bytes | None,
        *,
        method: str = "POST",
        query: Query | None = None,
    ) -> aiohttp.ClientResponse:
        """Send the request (POST `content` by default); the response once its status is 2xx
        (the caller reads and releases it). Error answers and failures leave as domain errors
        after the retries."""
        session, url = self._open(), self.base_url + path
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                if method == "POST" and query is None:
                    response = await session.post(url, data=content)
                else:
                    response = await session.request(method, url, data=content, params=query)
            except (TimeoutError, aiohttp.ClientError) as error:
                failure = map_error(error)
            else:
                if response.status < 400:
                    return response
                failure = await _error_answer(response)
                if not is_retried(response.status):
                    raise failure
                retry_after = _retry_after(response.headers)
            if attempt >= self.max_retries:
                raise failure
            await asyncio.sleep(retry_delay(attempt, retry_after))
            attempt += 1


async def _error_answer(response: aiohttp.ClientResponse) -> TunegateError:
    try:
        payload = orjson.loads(await response.read())
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError):
        payload = None
    finally:
        response.release()
    body = payload.get("error", payload) if isinstance(payload, dict) else None
    return rejection(response.status, body if isinstance(body, dict) else {}, response.headers)


def _answered(status: int, started: float) -> UpstreamReach:
    latency = round((time.perf_counter() - started) * 1000, 1)
    problem = None
    if status in (401, 403):
        problem = f"HTTP {status}: the upstream refused the gateway's key"
    elif status >= 400:
        problem = f"HTTP {status}"
    return UpstreamReach(status < 500, latency_ms=latency, status=status, problem=problem)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The upstream client's TLS settings (the SDK's: certifi's CAs, or `SSL_CERT_FILE` /
    `SSL_CERT_DIR`), built once per process. Reading the CA bundle costs some 50 ms of CPU,
    and a worker builds an upstream client for every task: it builds this before it forks its
    work horses, which inherit it."""
    return httpx2.create_ssl_context()


def create_client(settings: Settings) -> openai.AsyncOpenAI:
    if settings.openai_api_key is None:
        raise ValueError("no upstream key: set OPENAI_API_KEY (or pass the sandbox's key)")
    timeout = httpx2.Timeout(
        settings.upstream_timeout_seconds, connect=settings.upstream_connect_timeout_seconds
    )
    return openai.AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value(),
        base_url=settings.openai_base_url,
        timeout=timeout,
        max_retries=settings.upstream_max_retries,
        http_client=openai.DefaultAsyncHttpxClient(timeout=timeout, verify=tls_context()),
    )


class Upstream:
    """Everything tunegate asks of OpenAI (or the sandbox), as async methods."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
    ) -> None:
        self._client = client
        self._pool = CompletionPool(client)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size

    @classmethod
    def from_settings(cls, settings: Settings, **options: int) -> Upstream:
        return cls(create_client(settings), **options)

    async def aclose(self) -> None:
        await self._pool.aclose()
        await self._client.close()

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def probe(self, timeout: float) -> UpstreamReach:
        """One `GET /models`, no retries, at most about `timeout` seconds: whether and how fast
        the upstream answers. Nothing of its answer is kept but the status."""
        client = self._client.with_options(timeout=timeout, max_retries=0)
        started = time.perf_counter()
        try:
            with anyio.fail_after(timeout + 1):
                await client.models.list()
        except openai.APIStatusError as error:
            return _answered(error.status_code, started)
        except (openai.APITimeoutError, TimeoutError):
            return UpstreamReach(False, problem=f"no answer within {timeout:g} s")
        except openai.APIConnectionError as error:
            cause = type(error.__cause__).__name__ if error.__cause__ else "connection error"
            return UpstreamReach(False, problem=f"could not connect ({cause})")
        return _answered(200, started)

    # Files

    async def upload_file(
        self, path: Path, *, purpose: FilePurpose = "fine-tune", filename: str | None = None
    ) -> FileObject:
        """Upload a local file (see `upload_stream`)."""

        async def chunks() -> AsyncIterator[bytes]:
            async with await anyio.open_file(path, "rb") as handle:
                while chunk := await handle.read(self.part_size):
                    yield chunk

        size = (await anyio.Path(path).stat()).st_size
        return await self.upload_stream(chunks, size, filename or path.name, purpose=purpose)

    async def upload_stream(
        self,
        chunks: Callable[[], AsyncIterator[bytes]],
        size: int,
        filename: str,
        *,
        purpose: FilePurpose = "fine-tune",
    ) -> FileObject:
        """Upload `size` bytes read from `chunks()`: one request up to `multipart_threshold`
        bytes, else the Uploads API in `part_size` parts as they stream (with an md5 check;
        cancelled if it fails), never the whole file in memory."""
        if size > self.multipart_threshold:
            return await _guard(self._upload_in_parts(chunks, filename, size, purpose))
        content = b"".join([chunk async for chunk in chunks()])
        files = self._client.with_options(max_retries=0).files  # as create_job: look first
        return await _guard(files.create(file=(filename, content), purpose=purpose))

    async def _upload_in_parts(
        self,
        chunks: Callable[[], AsyncIterator[bytes]],
        name: str,
        size: int,
        purpose: FilePurpose,
    ) -> FileObject:
        uploads = self._client.uploads
        upload = await uploads.create(
            bytes=size, filename=name, mime_type=JSONL_MIME, purpose=purpose
        )
        try:
            part_ids, digest = [], hashlib.md5(usedforsecurity=False)
            async for part in _parts(chunks(), self.part_size):
                digest.update(part)
                part_ids.append((await uploads.parts.create(upload.id, data=part)).id)
            done = await uploads.complete(upload.id, part_ids=part_ids, md5=digest.hexdigest())
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._cancel_upload(upload.id)
            raise
        if done.file is None:
            raise UpstreamUnavailable("Upstream completed the upload without a file")
        return done.file

    async def _cancel_upload(self, upload_id: str) -> None:
        with contextlib.suppress(openai.OpenAIError):
            await self._client.uploads.cancel(upload_id)

    async def list_files(self, *, purpose: str | None = None) -> list[FileObject]:
        pages = self._client.files.list(purpose=purpose or openai.omit, limit=10_000)
        return await _guard(_collect(pages))

    async def find_file(self, filename: str, *, purpose: str = "fine-tune") -> FileObject | None:
        """The newest upstream file with this name and purpose (to reconcile after a crash)."""
        files = await self.list_files(purpose=purpose)
        matches = [f for f in files if f.filename == filename and f.status != "error"]
        return max(matches, key=lambda f: f.created_at, default=None)

    async def retrieve_file(self, file_id: str) -> FileObject:
        return await _guard(self._client.files.retrieve(file_id))

    async def delete_file(self, file_id: str) -> bool:
        return (await _guard(self._client.files.delete(file_id))).deleted

    async def file_content(self, file_id: str) -> bytes:
        return (await _guard(self._client.files.content(file_id))).content

    # Fine-tuning jobs

    async def create_job(self, *, model: str, training_file: str, **fields: Any) -> FineTuningJob:
        """Create a job; `fields` are OpenAI's other create fields (`validation_file`,
        `method`, `hyperparameters`, `suffix`, `seed`, `metadata`, `integrations`); None
        values are left out. Never retried here: a create whose answer was lost may still
        have made the job, so the caller looks for it before creating again (`jobs.submit`)."""
        given = {name: value for name, value in fields.items() if value is not None}
        jobs = self._client.with_options(max_retries=0).fine_tuning.jobs
        return await _guard(jobs.create(model=model, training_file=training_file, **given))

    async def list_jobs(self, *, metadata: dict[str, str] | None = None) -> list[FineTuningJob]:
        pages = self._client.fine_tuning.jobs.list(metadata=metadata or openai.omit, limit=100)
        return await _guard(_collect(pages))

    async def list_jobs_page(
        self, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of the upstream's jobs as JSON objects, newest first, older than job
        `after`; and whether more exist. Left unparsed: a walk over thousands of jobs reads a
        few fields of each, and builds a `FineTuningJob` only for those that changed."""
        return await self._json_page("/fine_tuning/jobs", after, limit)

    async def retrieve_job(self, job_id: str) -> FineTuningJob:
        return await _guard(self._client.fine_tuning.jobs.retrieve(job_id))

    async def cancel_job(self, job_id: str) -> FineTuningJob:
        return await _guard(self._client.fine_tuning.jobs.cancel(job_id))

    async def pause_job(self, job_id: str) -> FineTuningJob:
        return await _guard(self._client.fine_tuning.jobs.pause(job_id))

    async def resume_job(self, job_id: str) -> FineTuningJob:
        return await _guard(self._client.fine_tuning.jobs.resume(job_id))

    async def list_events(
        self, job_id: str, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of events as JSON objects (stored as they come), newest first, older than
        event `after`; and whether more exist."""
        return await self._json_page(f"/fine_tuning/jobs/{quote(job_id)}/events", after, limit)

    async def _json_page(
        self, path: str, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """A list endpoint's page as the upstream sent it (its objects, and whether more exist),
        over the proxy's connection pool: the calls a poll cycle makes by the thousand cost a
        fraction of the SDK's, with the same retries and errors."""
        query = [("limit", str(limit)), *([("after", after)] if after else [])]
        page = orjson.loads((await self.forward("GET", path, query=query)).content)
        return list(page.get("data") or []), bool(page.get("has_more"))

    async def events_since(
        self, job_id: str, last_seen: str | None, *, page_size: int = 100
    ) -> list[dict[str, Any]]:
        """Events newer than `last_seen` (all when None), oldest first."""
        newest_first: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page, more = await self.list_events(job_id, after=after, limit=page_size)
            for event in page:
                if event["id"] == last_seen:
                    return newest_first[::-1]
                newest_first.append(event)
            if not more or not page:
                return newest_first[::-1]
            after = str(page[-1]["id"])

    async def list_checkpoints(self, job_id: str) -> list[FineTuningJobCheckpoint]:
        pages = self._client.fine_tuning.jobs.checkpoints.list(job_id, limit=100)
        return await _guard(_collect(pages))

    # Models

    async def retrieve_model(self, model_id: str) -> Model:
        return await _guard(self._client.models.retrieve(model_id))

    async def delete_model(self, model_id: str) -> bool:
        return (await _guard(self._client.models.delete(model_id))).deleted

    # The proxy

    async def post_completion(
        self, path: CompletionPath, body: Mapping[str, Any] | bytes
    ) -> Completion:
        """POST a JSON body upstream and return the raw answer (4xx/5xx raise, mapped)."""
        return await self.forward("POST", path, body)

    async def stream_completion(
        self, path: CompletionPath, body: Mapping[str, Any] | bytes
    ) -> CompletionStream:
        """POST a `"stream": true` body upstream; iterate the result for raw SSE bytes."""
        return await self.forward_stream("POST", path, body)

    async def forward(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | bytes | None = None,
        query: Query | None = None,
    ) -> Completion:
        """One proxied call (a JSON body, if any; query parameters, if any) and its raw answer
        (4xx/5xx raise, mapped)."""
        content = None if body is None else _encode(body)
        response = await self._pool.send(path, content, method=method, query=query)
        try:
            content = await response.read()
        except (TimeoutError, aiohttp.ClientError) as error:
            raise map_error(error) from error
        finally:
            response.release()
        request_id = response.headers.get("x-request-id")
        return Completion(response.status, _kept(response.headers), content, request_id)

    async def forward_stream(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | bytes | None = None,
        query: Query | None = None,
    ) -> CompletionStream:
        """A proxied call answered with server-sent events; iterate the result for raw bytes."""
        content = None if body is None else _encode(body)
        return CompletionStream(await self._pool.send(path, content, method=method, query=query))


async def _collect(pages: AsyncIterable[T]) -> list[T]:
    return [item async for item in pages]


async def _parts(chunks: AsyncIterator[bytes], part_size: int) -> AsyncIterator[bytes]:
    """Re-cut a stream of chunks into parts of `part_size` bytes (the last may be shorter)."""
    pending = bytearray()
    async for chunk in chunks:
        pending.extend(chunk)
        while len(pending) >= part_size:
            yield bytes(pending[:part_size])
            del pending[:part_size]
    if pending:
        yield bytes(pending)
