"""What the operator's health page shows: the task queue's depth and whether the upstream
answers. Plain records; the queue and the upstream client fill them in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """One RQ queue: jobs waiting, running, failed, and delayed (polls due later)."""

    name: str
    queued: int
    started: int
    failed: int
    scheduled: int


@dataclass(frozen=True, slots=True)
class UpstreamReach:
    """One cheap call to the upstream. `reachable`: it answered below 500 (a refused key is
    still an answer, and `problem` says so). `problem` is in tunegate's words, never the
    upstream's, which may quote the key."""

    reachable: bool
    latency_ms: float | None = None
    status: int | None = None
    problem: str | None = None


@dataclass(slots=True)
class GatewayHealth:
    redis: bool
    workers: int
    queues: list[QueueDepth] = field(default_factory=list)
    queues_problem: str | None = None
    upstream_name: str = ""
    upstream_url: str = ""
    upstream: UpstreamReach | None = None
