"""Assembling a running gateway from Settings: embedded pieces, the app, and the server.

With `REDIS_URL` unset, an embedded fakeredis and worker threads start in this process. With
`OPENAI_API_KEY` unset, the sandbox upstream starts in this process and its address is published
in Redis so that `tunegate worker` processes use the same sandbox. Both say so loudly.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from service.config import Settings, load_settings
from service.embedded import EmbeddedRedis
from service.http.app import asgi_stack, create_app
from service.logging import configure_logging, get_logger, register_secrets
from service.operations import health
from service.operations.context import Context
from service.queue import TaskQueue
from service.storage.local import private_dir
from service.store import Store, keys
from service.upstream import Upstream

log = get_logger("tunegate.runtime")


@dataclass
class Gateway:
    settings: Settings
    asgi: Any
    closers: list[Callable[[], Any]] = field(default_factory=list)

    def close(self) -> None:
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception:
                log.warning(
                    "shutdown_step_failed", step=getattr(closer, "__qualname__", "?"), exc_info=True
                )


def banner(lines: list[str]) -> None:
    """A loud start-up notice on stderr; bypasses the log scrubber on purpose (it may show
    the generated admin token, once)."""
    width = max(len(line) for line in lines) + 4
    print("\n" + "*" * width, file=sys.stderr)
    for line in lines:
        print(f"* {line.ljust(width - 4)} *", file=sys.stderr)
    print("*" * width + "\n", file=sys.stderr, flush=True)


def start_embedded_redis(settings: Settings, closers: list[Callable[[], Any]]) -> Settings:
    redis = EmbeddedRedis().start()
    closers.append(redis.stop)
    banner(
        [
            "EMBEDDED MODE: REDIS_URL is not set.",
            "Using an in-process fakeredis and in-process worker threads.",
            "NOTHING SURVIVES A RESTART. Set REDIS_URL for real use.",
        ]
    )
    return settings.model_copy(update={"redis_url": redis.url})


def ensure_admin_token(settings: Settings) -> Settings:
    if settings.admin_token is not None:
        return settings
    if not settings.embedded:
        print(
            "tunegate: configuration error: TUNEGATE_ADMIN_TOKEN is required with REDIS_URL",
            file=sys.stderr,
        )
        raise SystemExit(2)
    token = "tga_" + secrets.token_urlsafe(32)
    banner(
        [
            "Generated operator token (shown once; set TUNEGATE_ADMIN_TOKEN to choose one):",
            f"TUNEGATE_ADMIN_TOKEN={token}",
        ]
    )
    return settings.model_copy(update={"admin_token": SecretStr(token)})


def start_sandbox(settings: Settings, closers: list[Callable[[], Any]]) -> Settings:
    from service.sandbox import SandboxConfig, start_in_thread

    api_key = "sk-sandbox-" + secrets.token_urlsafe(24)
    handle = start_in_thread(SandboxConfig(api_key=api_key))
    closers.append(handle.stop)
    banner(
        [
            "SANDBOX UPSTREAM: OPENAI_API_KEY is not set.",
            f"Fine-tuning and completions go to the built-in sandbox at {handle.base_url}",
            "No request reaches OpenAI. Set OPENAI_API_KEY for real use.",
        ]
    )
    return settings.model_copy(
        update={"openai_api_key": SecretStr(api_key), "openai_base_url": handle.base_url}
    )


def publish_sandbox(settings: Settings) -> None:
    """Tell `tunegate worker` processes (which have no upstream key either) where it is."""
    assert settings.redis_url is not None and settings.openai_api_key is not None

    async def publish() -> None:
        store = Store(settings.redis_url or "")
        try:
            await store.workers.publish_sandbox(
                settings.openai_base_url,
                settings.openai_api_key.get_secret_value(),  # type: ignore[union-attr]
            )
        finally:
            await store.aclose()

    asyncio.run(publish())


def build_gateway(settings: Settings, *, embedded_workers: int = 2) -> Gateway:
    closers: list[Callable[[], Any]] = []
    keys.use_namespace(settings.redis_namespace)
    embedded, sandbox = settings.embedded, settings.sandbox
    settings = ensure_admin_token(settings)
    if embedded:
        settings = start_embedded_redis(settings, closers)
    if sandbox:
        settings = start_sandbox(settings, closers)
        if not embedded:
            publish_sandbox(settings)
    register_secrets(settings.secret_values())
    assert settings.redis_url is not None
    if settings.local_data_dir is not None:
        private_dir(settings.local_data_dir)
    if embedded:
        from workers.main import start_thread_workers

        closers.append(start_thread_workers(settings, embedded_workers))
    queue = TaskQueue(settings.redis_url, settings.redis_namespace)
    closers.append(queue.close)
    ctx = Context(
        settings=settings,
        store=Store(settings.redis_url, settings.caller_cache_seconds),
        queue=queue,
        upstream=Upstream.from_settings(settings),
        extras={health.SANDBOX: sandbox},
    )
    app = create_app(ctx, queue_depth=queue.depth)
    return Gateway(settings=settings, asgi=asgi_stack(app), closers=closers)


def serve(settings: Settings, workers: int = 1) -> None:
    import uvicorn

    from service.serving import uvicorn_options

    if workers > 1:
        serve_processes(settings, workers)
        return
    gateway = build_gateway(settings)
    log.info(
        "serving",
        url=f"http://{settings.host}:{settings.port}",
        embedded=settings.embedded,
        sandbox=gateway.settings.openai_base_url,
    )
    try:
        uvicorn.run(
            gateway.asgi,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            **uvicorn_options(settings),
        )
    finally:
        gateway.close()


def serve_processes(settings: Settings, workers: int) -> None:
    """`tunegate serve --workers N`: N processes sharing the port, each a whole service.

    Needs REDIS_URL: embedded mode keeps its Redis and worker threads inside one process.
    Without OPENAI_API_KEY the sandbox starts here, once, and every process uses it.
    `/metrics` counts the requests of the process that answers it.
    """
    import uvicorn

    from service.serving import uvicorn_options

    if settings.embedded:
        print(
            "tunegate: --workers needs REDIS_URL (embedded mode keeps its Redis and worker "
            "threads in one process)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    ensure_admin_token(settings)
    closers: list[Callable[[], Any]] = []
    if settings.sandbox:
        settings = start_sandbox(settings, closers)
        publish_sandbox(settings)
        assert settings.openai_api_key is not None
        os.environ["OPENAI_API_KEY"] = settings.openai_api_key.get_secret_value()
        os.environ["OPENAI_BASE_URL"] = settings.openai_base_url
    log.info("serving", url=f"http://{settings.host}:{settings.port}", workers=workers)
    try:
        uvicorn.run(
            "service.runtime:process_app",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            **uvicorn_options(settings),
        )
    finally:
        for closer in reversed(closers):
            closer()


def process_app() -> Any:
    """The ASGI app of one `serve --workers N` process (uvicorn calls this in each)."""
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    gateway = build_gateway(settings)
    atexit.register(gateway.close)
    return gateway.asgi
