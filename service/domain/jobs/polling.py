"""When to poll an upstream job next, and which of its events are new.

Polls come quickly while a job is changing and back off while it is not, up to a cap; every
delay is jittered so that thousands of jobs created together do not poll together. Events come
from the API newest first, a page at a time; `new_events` keeps those after the last one stored,
oldest first and each once, so appending them keeps the stored list in order without repeats.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FAST_DELAY = 2.0
MAX_DELAY = 60.0
BACKOFF = 1.6
JITTER = 0.2
MIN_POLL_DELAY = FAST_DELAY * (1 - JITTER)
MAX_POLL_DELAY = MAX_DELAY * (1 + JITTER)


def next_poll_delay(previous_delay: float | None, changed: bool, rng: random.Random) -> float:
    """Seconds until the next poll: `FAST_DELAY` after a change (or the first time), else the
    previous delay times `BACKOFF` up to `MAX_DELAY`, each within ±`JITTER` of that."""
    if changed or previous_delay is None:
        base = FAST_DELAY
    else:
        base = min(MAX_DELAY, max(FAST_DELAY, previous_delay) * BACKOFF)
    jittered = base * rng.uniform(1 - JITTER, 1 + JITTER)
    return min(MAX_POLL_DELAY, max(MIN_POLL_DELAY, jittered))


@dataclass(frozen=True, slots=True)
class NewEvents:
    events: list[Mapping[str, Any]]  # oldest first
    complete: bool  # False: the last stored event was not reached; fetch older pages too

    @property
    def last_id(self) -> str | None:
        return str(self.events[-1]["id"]) if self.events else None


def new_events(newest_first: Iterable[Mapping[str, Any]], last_seen_id: str | None) -> NewEvents:
    """The events after `last_seen_id`, from one page or several pages in order."""
    fresh: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    complete = last_seen_id is None
    for event in newest_first:
        event_id = str(event.get("id"))
        if event_id == last_seen_id:
            complete = True
            break
        if event_id not in seen:
            seen.add(event_id)
            fresh.append(event)
    fresh.reverse()
    # Stable: events created in the same second keep the API's order.
    fresh.sort(key=lambda event: int(event.get("created_at") or 0))
    return NewEvents(fresh, complete)


# The poll cycle: one walk of the upstream's job list covers every watched job.
LIST_PAGE = 100
CYCLE_MIN_SECONDS = 2.0
PAGES_PER_SECOND = 2.0  # the walk's pace: 1,000 jobs cost 10 pages every 5 s
EVENTS_EVERY_SECONDS = 300.0  # a running job's metrics are read at least this often
TRIAL_EVENTS_EVERY_SECONDS = 2.0  # a sweep's trials: early stopping reads their metrics
CLOCK_SLACK_SECONDS = 120  # the walk reads this much past the oldest watched job
FAIR_STEP_SECONDS = 0.001  # one org's n-th changed job falls due n ms after the first


@dataclass(frozen=True, slots=True)
class Watched:
    """What the poll cycle knows of a job the upstream holds, without reading its record."""

    job_id: str
    org_id: str
    mark: str  # `listing_mark` of what was last recorded
    events_at: float  # when its events were last read
    created_at: int  # the gateway's creation time: the upstream's is no earlier
    events_every: float = EVENTS_EVERY_SECONDS  # how often a running job's events are read


def listing_mark(status: str | None, model: str | None, trained_tokens: int | None) -> str:
    """What a listed job says that the gateway must act on: status, model, tokens."""
    return f"{status or ''}|{model or ''}|{trained_tokens if trained_tokens is not None else ''}"


def cycle_seconds(watched: int) -> float:
    """How often the cycle walks: every `CYCLE_MIN_SECONDS`, slower once the walk is long."""
    pages = -(-watched // LIST_PAGE)
    return max(CYCLE_MIN_SECONDS, pages / PAGES_PER_SECOND)


def needs_poll(watched: Watched, listed_mark: str, now: float) -> bool:
    """A listed job is polled when it changed, or when it runs and its events are old."""
    if listed_mark != watched.mark:
        return True
    running = listed_mark.startswith("running|")
    return running and now - watched.events_at >= watched.events_every


def fair_order(jobs: Iterable[Watched]) -> list[tuple[str, float]]:
    """(job id, offset): each org's first job at 0, its second one step later, and so on, so
    that one org's thousand changed jobs fall due after every other org's first few."""
    counts: dict[str, int] = {}
    placed = []
    for job in jobs:
        rank = counts.get(job.org_id, 0)
        counts[job.org_id] = rank + 1
        placed.append((job.job_id, rank * FAIR_STEP_SECONDS))
    return placed
