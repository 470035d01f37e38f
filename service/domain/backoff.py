"""How long to wait before trying again after a passing failure (a 429, a 5xx, a timeout).

Exponential in the number of failures in a row, capped, and jittered so that work which failed
together does not come back together. Jobs and dataset hand-offs wait this way: a passing
failure delays them, however long the upstream takes to come back, and never fails them.
"""

from __future__ import annotations

import random

MAX_BACKOFF_SECONDS = 300.0
JITTER = 0.2


def backoff_seconds(failures: int, rng: random.Random, retry_after: float = 0.0) -> float:
    """`2**failures` seconds up to `MAX_BACKOFF_SECONDS`, within ±`JITTER`, and never sooner than
    the upstream's `retry_after`."""
    base = min(MAX_BACKOFF_SECONDS, 2.0 ** max(1, failures))
    return max(base * rng.uniform(1 - JITTER, 1 + JITTER), retry_after)
