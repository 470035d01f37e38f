"""Prometheus metrics for one app: requests by route and status, latency, queue depth."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, queue_depth: Callable[[], dict[str, int]] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tunegate_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.unmatched = Counter(
            "tunegate_http_unmatched_requests",
            "Requests no route matched (counted here, never written to the audit trail).",
            ["method"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tunegate_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "tunegate_queue_depth",
            "Jobs waiting in each RQ queue.",
            ["queue"],
            registry=self.registry,
        )
        self._queue_depth_source = queue_depth

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        if self._queue_depth_source is not None:
            for queue, depth in self._queue_depth_source().items():
                self.queue_depth.labels(queue).set(depth)
        return generate_latest(self.registry)
