"""Liveness, readiness and Prometheus metrics: no auth."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Controller, Request, Response, get

from service.errors import Unavailable
from service.http.auth import context_of
from service.http.schemas.common import Health, Readiness

_NO_AUDIT = {"audit": "never"}


class HealthController(Controller):
    tags = ["health"]

    @get("/health", operation_id="health", opt=_NO_AUDIT)
    async def health(self) -> Health:
        return Health()

    @get("/ready", operation_id="ready", opt=_NO_AUDIT)
    async def ready(self, request: Request[Any, Any, Any]) -> Response[Readiness]:
        store = context_of(request).store
        try:
            redis_ok = await store.ping()
            workers = await store.workers.alive_count()
        except Unavailable:
            redis_ok, workers = False, 0
        ready = redis_ok and workers > 0
        body = Readiness(status="ready" if ready else "not_ready", redis=redis_ok, workers=workers)
        return Response(body, status_code=200 if ready else 503)

    @get("/metrics", operation_id="metrics", opt=_NO_AUDIT, media_type="text/plain")
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        body = await anyio.to_thread.run_sync(request.app.state.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4")
