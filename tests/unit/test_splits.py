"""Validation splits: reproducible, disjoint, complete, streaming, with guaranteed minimums."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.datasets.splits import MIN_TRAIN, draw, split_lines
from service.errors import InvalidRequest


def lines(n: int) -> list[bytes]:
    return [b'{"messages": [{"role": "user", "content": "%d"}]}\n' % i for i in range(n)]


def split(data: list[bytes], fraction: float, seed: int) -> tuple[list[bytes], list[bytes]]:
    train, valid = io.BytesIO(), io.BytesIO()
    counts = split_lines(iter(data), fraction, seed, train, valid)
    train_lines = train.getvalue().splitlines(keepends=True)
    valid_lines = valid.getvalue().splitlines(keepends=True)
    assert (counts.train, counts.validation) == (len(train_lines), len(valid_lines))
    return train_lines, valid_lines


def test_draws_are_uniform_enough_and_seeded() -> None:
    values = [draw(i, 7) for i in range(4000)]
    assert all(0 <= v < 1 for v in values)
    assert 0.18 < sum(v < 0.2 for v in values) / len(values) < 0.22
    assert draw(1, 7) == draw(1, 7) != draw(1, 8)


def test_split_follows_the_fraction_roughly() -> None:
    train, valid = split(lines(2000), 0.1, seed=42)
    assert len(train) + len(valid) == 2000
    assert 150 < len(valid) < 250


def test_tiny_files_still_get_one_validation_example() -> None:
    data = lines(11)
    for seed in range(30):
        train, valid = split(data, 0.01, seed)
        assert (len(train), len(valid)) == (10, 1)


def test_training_keeps_its_minimum_with_a_large_fraction() -> None:
    for seed in range(30):
        train, valid = split(lines(12), 0.49, seed)
        assert len(train) >= MIN_TRAIN
        assert len(valid) >= 1


@pytest.mark.parametrize("n", [0, 1, 10])
def test_too_few_examples_are_refused(n: int) -> None:
    with pytest.raises(InvalidRequest, match="at least 11 examples") as raised:
        split(lines(n), 0.2, seed=1)
    assert raised.value.param == "validation_split"


def test_fraction_out_of_range_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        split(lines(50), 0.5, seed=1)


def test_blank_lines_are_skipped_and_last_line_gets_a_newline() -> None:
    data = [*lines(20), b"\n", b"   \r\n", b'{"last": true}']
    train, valid = split(data, 0.2, seed=3)
    assert len(train) + len(valid) == 21
    assert all(line.endswith(b"}\n") for line in train + valid)


def test_crlf_line_endings_become_newlines() -> None:
    data = [line.replace(b"\n", b"\r\n") for line in lines(15)]
    train, valid = split(data, 0.3, seed=3)
    assert not any(b"\r" in line for line in train + valid)


def test_lines_are_streamed_not_collected() -> None:
    exhausted = False
    early_writes = 0

    class Counting(io.BytesIO):
        def write(self, data: bytes, /) -> int:  # type: ignore[override]
            nonlocal early_writes
            early_writes += not exhausted
            return super().write(data)

    def source() -> Iterator[bytes]:
        nonlocal exhausted
        yield from lines(500)
        exhausted = True

    split_lines(source(), 0.2, 9, Counting(), Counting())
    assert early_writes >= 500 - (MIN_TRAIN + 1)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=11, max_value=150),
    fraction=st.floats(min_value=0.001, max_value=0.499),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_splits_are_reproducible_disjoint_and_complete(n: int, fraction: float, seed: int) -> None:
    data = lines(n)
    train, valid = split(data, fraction, seed)
    assert (train, valid) == split(data, fraction, seed)
    assert set(train).isdisjoint(valid)
    assert sorted(train + valid) == sorted(data)
    assert len(train) >= MIN_TRAIN
    assert len(valid) >= 1


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**31 - 1))
def test_different_seeds_usually_differ(seed: int) -> None:
    data = lines(200)
    assert split(data, 0.3, seed) != split(data, 0.3, seed + 1)
