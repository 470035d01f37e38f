"""The text under PII inspection and the cheap views of it the detectors share.

Owns `Finding` and the candidate windows: each view (lowercased text, runs of digits and
separators, positions of a character) is computed once per text and only when a detector asks,
so a detector can skip its patterns entirely when its trigger characters are absent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.domain.pii.detect import ScanBudget

Span = tuple[int, int]

# Digits mixed with the separators numbers are written with; every detector needs at least
# four digits, so shorter runs are not worth a match object.
_DIGIT_RUN = re.compile(r"[0-9][0-9 ().:/+\-]{2,}[0-9]", re.ASCII)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SEPARATORS = str.maketrans("", "", " ().:/+-")


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    start: int
    end: int


# A run of digits and separators: (start, end, how many digits, whether it has a dot).
_DigitRun = tuple[int, int, int, bool]


def merge_windows(spans: Iterable[Span], before: int, after: int, limit: int) -> list[Span]:
    """Spans widened by `before`/`after` (clamped to [0, limit]), overlapping ones merged."""
    merged: list[Span] = []
    for start, end in spans:
        start, end = max(0, start - before), min(limit, end + after)
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def slice_spans(spans: Iterable[Span], length: int, overlap: int) -> Iterable[Span]:
    """Spans longer than `length` cut into slices of that length that overlap by `overlap`,
    so a match near a cut is whole in one of them; shorter spans unchanged."""
    step = length - overlap
    for start, end in spans:
        if end - start <= length:
            yield start, end
            continue
        for cut in range(start, end - overlap, step):
            yield cut, min(end, cut + length)


class Text:
    __slots__ = ("_lower", "_runs", "budget", "value")

    def __init__(self, value: str, budget: ScanBudget | None = None) -> None:
        self.value = value
        self.budget = budget
        self._lower: str | None = None
        self._runs: list[_DigitRun] | None = None

    def lower(self) -> str:
        """Lowercased, index for index with `value` (str.lower can change the length)."""
        if self._lower is None:
            lowered = self.value.lower()
            if len(lowered) != len(self.value):
                lowered = self.value.translate(_ASCII_LOWER)
            self._lower = lowered
        return self._lower

    def positions(self, needle: str, haystack: str | None = None) -> list[int]:
        text = self.value if haystack is None else haystack
        found: list[int] = []
        index = text.find(needle)
        while index != -1:
            found.append(index)
            index = text.find(needle, index + 1)
        return found

    def _digit_runs(self) -> list[_DigitRun]:
        if self._runs is None:
            text = self.value
            if any(digit in text for digit in "0123456789"):
                self._runs = [
                    (m.start(), m.end(), len(m[0].translate(_SEPARATORS)), "." in m[0])
                    for m in _DIGIT_RUN.finditer(text)
                ]
            else:
                self._runs = []
        return self._runs

    def digit_windows(
        self,
        min_digits: int,
        before: int,
        after: int,
        *,
        dotted: bool = False,
        merge: bool = True,
        slice_at: int | None = None,
    ) -> list[Span]:
        """Windows around digit runs with at least `min_digits` digits (and a `.` if asked):
        merged where they overlap, or one per run; with `slice_at`, runs longer than that are
        cut into overlapping slices so no window grows with the text."""
        runs: Iterable[Span] = (
            (start, end)
            for start, end, digits, has_dot in self._digit_runs()
            if digits >= min_digits and (has_dot or not dotted)
        )
        if slice_at is not None:
            runs = slice_spans(runs, slice_at, slice_at // 2)
        if merge:
            return merge_windows(runs, before, after, len(self.value))
        limit = len(self.value)
        return [(max(0, start - before), min(limit, end + after)) for start, end in runs]
