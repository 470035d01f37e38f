import random
import statistics

import pytest

from service.domain.datasets.stats import (
    CommonSuffix,
    DigestSet,
    Histogram,
    default_epochs,
    example_digest,
)


@pytest.mark.parametrize(
    ("examples", "epochs"),
    [(1, 25), (10, 10), (33, 3), (34, 3), (100, 3), (8333, 3), (8334, 2), (25_000, 1), (10**6, 1)],
)
def test_default_epochs_follow_the_recipe(examples: int, epochs: int) -> None:
    assert default_epochs(examples) == epochs


def linear_quantile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.mark.parametrize("size", [1, 2, 3, 10, 101, 1000])
def test_histogram_quantiles_match_sorting(size: int) -> None:
    rng = random.Random(size)
    values = [rng.choice([rng.randint(1, 50), rng.randint(1, 5000)]) for _ in range(size)]
    histogram = Histogram()
    for value in values:
        histogram.add(value)
    summary = histogram.distribution()
    assert summary is not None
    assert (summary.min, summary.max) == (min(values), max(values))
    assert summary.mean == pytest.approx(statistics.mean(values))
    assert summary.median == pytest.approx(statistics.median(values))
    assert summary.p10 == pytest.approx(linear_quantile(values, 0.1))
    assert summary.p90 == pytest.approx(linear_quantile(values, 0.9))
    assert histogram.capped_total(100) == sum(min(v, 100) for v in values)
    assert histogram.count_over(100) == sum(v > 100 for v in values)


def test_empty_histogram_has_no_distribution() -> None:
    assert Histogram().distribution() is None


def test_digest_set_grows_and_finds_duplicates() -> None:
    digests = DigestSet(capacity=4)
    assert all(digests.add(example_digest(str(i).encode())) for i in range(5000))
    assert len(digests) == 5000
    assert not any(digests.add(example_digest(str(i).encode())) for i in range(0, 5000, 7))


def test_common_suffix() -> None:
    suffix = CommonSuffix()
    for text in ("a\n\n###\n\n", "bb\n\n###\n\n", "c ###\n\n"):
        suffix.add(text)
    assert suffix.value == "###\n\n"
    suffix.add("no separator")
    assert suffix.value == ""
