import random

import pytest

from service.domain.backoff import JITTER, MAX_BACKOFF_SECONDS, backoff_seconds


class Fixed(random.Random):
    """Always draws `at` of the way across a uniform range."""

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at = at

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.at


@pytest.mark.parametrize(("failures", "seconds"), [(0, 2), (1, 2), (2, 4), (3, 8), (8, 256)])
def test_doubles_with_each_failure_in_a_row(failures: int, seconds: float) -> None:
    assert backoff_seconds(failures, Fixed(0.5)) == pytest.approx(seconds)


def test_is_capped_and_jittered_either_way() -> None:
    assert backoff_seconds(40, Fixed(0.5)) == pytest.approx(MAX_BACKOFF_SECONDS)
    assert backoff_seconds(40, Fixed(0.0)) == pytest.approx(MAX_BACKOFF_SECONDS * (1 - JITTER))
    assert backoff_seconds(40, Fixed(1.0)) == pytest.approx(MAX_BACKOFF_SECONDS * (1 + JITTER))


def test_never_sooner_than_the_upstream_asks() -> None:
    assert backoff_seconds(1, Fixed(0.5), retry_after=30.0) == 30.0
    assert backoff_seconds(5, Fixed(0.5), retry_after=1.0) == pytest.approx(32)


def test_spreads_what_failed_together() -> None:
    rng = random.Random(7)
    assert len({round(backoff_seconds(3, rng), 3) for _ in range(20)}) == 20
