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
