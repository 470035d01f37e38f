"""Constant-memory accumulators behind the dataset report's numbers.

Owns the token histograms (exact quantiles from value counts, so a billion-token file costs
only as many entries as distinct lengths), the default-epochs heuristic and billing from the
fine-tuning data-prep recipe, duplicate detection with 8-byte digests in a flat open-addressing
table (at most 24 bytes per example, against about 90 in a Python set of ints), and
streaming common-suffix tracking.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections import Counter
from collections.abc import Iterable

from service.domain.datasets.report import Distribution

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def default_epochs(examples: int) -> int:
    """The epochs OpenAI picks when `n_epochs` is left on auto."""
    if examples <= 0:
        return TARGET_EPOCHS
    if examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // examples)
    if examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // examples)
    return TARGET_EPOCHS


class Histogram:
    """Counts of integer values; quantiles interpolate linearly, as numpy's default does."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.n = 0
        self.total = 0

    def add(self, value: int) -> None:
        self.counts[value] += 1
        self.n += 1
        self.total += value

    def capped_total(self, cap: int) -> int:
        return sum(min(value, cap) * count for value, count in self.counts.items())

    def count_over(self, limit: int) -> int:
        return sum(count for value, count in self.counts.items() if value > limit)

    def _kth(self, ranks: Iterable[int]) -> dict[int, int]:
        wanted = sorted(set(ranks))
        found: dict[int, int] = {}
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            while wanted and wanted[0] < seen:
                found[wanted.pop(0)] = value
        return found

    def distribution(self) -> Distribution | None:
        if not self.n:
            return None
        positions = {q: q * (self.n - 1) for q in (0.1, 0.5, 0.9)}
        ranks = [r for p in positions.values() for r in (math.floor(p), math.ceil(p))]
        kth = self._kth([0, self.n - 1, *ranks])

        def quantile(q: float) -> float:
            low, high = math.floor(positions[q]), math.ceil(positions[q])
            return kth[low] + (kth[high] - kth[low]) * (positions[q] - low)

        return Distribution(
            min=kth[0],
            max=kth[self.n - 1],
            mean=self.total / self.n,
            median=quantile(0.5),
            p10=quantile(0.1),
            p90=quantile(0.9),
        )


def example_digest(data: bytes) -> int:
    """A non-zero 64-bit digest (zero marks an empty slot)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") or 1


class DigestSet:
    """A set of 64-bit digests in one flat array, linear probing, grown at two-thirds full."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._slots = array("Q", bytes(8 * capacity))
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, digest: int) -> bool:
        """Adds the digest; False when it was already present."""
        if not _insert(self._slots, digest):
            return False
        self._size += 1
        if 3 * self._size > 2 * len(self._slots):
            old, self._slots = self._slots, array("Q", bytes(16 * len(self._slots)))
            for item in old:
                if item:
                    _insert(self._slots, item)
        return True


def _insert(slots: array[int], digest: int) -> bool:
    mask = len(slots) - 1
    index = digest & mask
    while slots[index]:
        if slots[index] == digest:
            return False
        index = (index + 1) & mask
    slots[index] = digest
    return True


class CommonSuffix:
    """The longest suffix (up to `limit` characters) shared by every string seen."""

    def __init__(self, limit: int = 32) -> None:
        self.limit = limit
        self.value: str | None = None

    def add(self, text: str) -> None:
        if self.value is None:
            self.value = text[-self.limit :] if self.limit else ""
            return
        common = 0
        for left, right in zip(reversed(self.value), reversed(text), strict=False):
            if left != right:
                break
            common += 1
        self.value = self.value[len(self.value) - common :]
