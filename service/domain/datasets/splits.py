"""Carving a validation set out of a training file (`validation_split`), one line at a time.

Each example goes to validation when a keyed hash of its line index and the seed falls below
the fraction, so the same file, fraction and seed always give the same split, whatever else
runs in the process. Lines are written to the two sinks as they are read; only the few lines
that may have to change sides to meet the minimums (at least `MIN_VALIDATION` to validate and
`MIN_TRAIN` to train on) are held back, at most `MIN_TRAIN + 1` of them, and written last.
On `InvalidRequest` the sinks hold a partial split: the caller discards them.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from service.errors import InvalidRequest

MIN_TRAIN = 10
MIN_VALIDATION = 1
_PERSON = b"tunegate-split"


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True, slots=True)
class SplitCounts:
    train: int
    validation: int


def draw(index: int, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the line index and the seed."""
    digest = hashlib.blake2b(
        index.to_bytes(8, "big"),
        key=str(seed).encode(),
        person=_PERSON,
        digest_size=8,
    ).digest()
    return int.from_bytes(digest, "big") / 2**64


_Line = tuple[float, int, bytes]  # (draw, index, line)


@dataclass
class _Splitter:
    train: Sink
    validation: Sink
    train_count: int = 0
    valid_count: int = 0
    # The train line closest to validation: it moves over if validation ends up empty.
    spare_train: _Line | None = None
    # The validation lines closest to training (a min-heap on the draw): they move over if
    # training ends up short.
    spare_valid: list[_Line] = field(default_factory=list)

    def add(self, draw_: float, index: int, line: bytes, fraction: float) -> None:
        if draw_ < fraction:
            self._add_valid((draw_, index, line))
        else:
            self._add_train((draw_, index, line))

    def _add_train(self, item: _Line) -> None:
        self.train_count += 1
        held = self.spare_train
        if held is None or item < held:
            self.spare_train = item
            if held is None:
                return
            item = held
        self.train.write(item[2])

    def _add_valid(self, item: _Line) -> None:
        self.valid_count += 1
        heapq.heappush(self.spare_valid, item)
        if len(self.spare_valid) > MIN_TRAIN:
            self.validation.write(heapq.heappop(self.spare_valid)[2])

    def finish(self) -> SplitCounts:
        spares = sorted(self.spare_valid, reverse=True)  # closest to training first
        if self.valid_count == 0 and self.spare_train is not None:
            spares.append(self.spare_train)
            self.spare_train = None
            self.train_count, self.valid_count = self.train_count - 1, 1
        to_train = self._rebalance(spares)
        self._check()
        if self.spare_train is not None:
            to_train.append(self.spare_train)
        _write_in_order(self.train, to_train)
        _write_in_order(self.validation, spares)
        return SplitCounts(self.train_count, self.valid_count)

    def _rebalance(self, spares: list[_Line]) -> list[_Line]:
        """Move validation lines to training (popped from `spares`) until it has enough."""
        moved: list[_Line] = []
        while self.train_count < MIN_TRAIN and self.valid_count > MIN_VALIDATION and spares:
            moved.append(spares.pop(0))
            self.train_count, self.valid_count = self.train_count + 1, self.valid_count - 1
        return moved

    def _check(self) -> None:
        total = self.train_count + self.valid_count
        if self.train_count < MIN_TRAIN or self.valid_count < MIN_VALIDATION:
            raise InvalidRequest(
                f"validation_split needs at least {MIN_TRAIN + MIN_VALIDATION} examples "
                f"({MIN_TRAIN} to train on, {MIN_VALIDATION} to validate); "
                f"the training file has {total}.",
                param="validation_split",
            )


def _write_in_order(sink: Sink, items: list[_Line]) -> None:
    for _draw, _index, line in sorted(items, key=lambda item: item[1]):
        sink.write(line)


def split_lines(
    lines: Iterable[bytes], fraction: float, seed: int, train: Sink, validation: Sink
) -> SplitCounts:
    """Write each non-blank line (newline-terminated) to `train` or `validation`."""
    if not 0 < fraction < 0.5:
        raise InvalidRequest(
            "validation_split must be greater than 0 and less than 0.5.", param="validation_split"
        )
    splitter = _Splitter(train, validation)
    for index, raw in enumerate(lines):
        line = raw.rstrip(b"\r\n")
        if line.strip():
            splitter.add(draw(index, seed), index, line + b"\n", fraction)
    return splitter.finish()
