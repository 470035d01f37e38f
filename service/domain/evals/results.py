"""What a run's grades add up to, and how two runs of one eval compare.

An item passes when every criterion passes; an item whose sampling or grading failed is
`errored` and counts for no criterion. Two runs compare item by item (the same file, so the same
items in the same order): per criterion, each run's pass rate, the difference (second minus
first) and its interval from a paired bootstrap over the items, seeded so that the same runs
always give the same interval, and the items whose verdict changed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BOOTSTRAP_SEED = 20261206
RESAMPLES = 2000

# One item's verdicts by criterion name; None when the item errored.
Verdicts = Mapping[str, bool] | None


def result_counts(items: Sequence[Verdicts]) -> dict[str, int]:
    errored = sum(1 for verdicts in items if verdicts is None)
    passed = sum(1 for v in items if v is not None and all(v.values()))
    return {
        "total": len(items),
        "passed": passed,
        "failed": len(items) - errored - passed,
        "errored": errored,
    }


def per_model_usage(samples: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The sampled models' token usage, one row per model (OpenAI's `per_model_usage`): what the
    samples' own `usage` says; a kept answer (a `jsonl` run) or a failed sample calls no model."""
    rows: dict[str, dict[str, Any]] = {}
    for sample in samples:
        model, usage = sample.get("model"), sample.get("usage")
        if not model or not isinstance(usage, Mapping):
            continue
        row = rows.setdefault(
            str(model),
            {
                "model_name": str(model),
                "invocation_count": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "total_tokens": 0,
                "cached_tokens": 0,
            },
        )
        details = usage.get("prompt_tokens_details") or {}
        row["invocation_count"] += 1
        row["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        row["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        row["total_tokens"] += int(usage.get("total_tokens") or 0)
        row["cached_tokens"] += int(details.get("cached_tokens") or 0)
    return sorted(rows.values(), key=lambda row: row["model_name"])


def per_criterion(names: Sequence[str], items: Sequence[Verdicts]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        verdicts = [v[name] for v in items if v is not None and name in v]
        passed = sum(verdicts)
        rows.append({"testing_criteria": name, "passed": passed, "failed": len(verdicts) - passed})
    return rows


@dataclass(frozen=True)
class Difference:
    criterion: str
    rates: tuple[float, float]
    difference: float
    interval: tuple[float, float]
    changed: list[dict[str, Any]]
    items: int

    def to_json(self) -> dict[str, Any]:
        return {
            "testing_criteria": self.criterion,
            "pass_rates": list(self.rates),
            "difference": self.difference,
            "interval": list(self.interval),
            "confidence": CONFIDENCE,
            "items": self.items,
            "changed_items": self.changed,
        }


CONFIDENCE = 0.95


def _pairs(name: str, a: Sequence[Verdicts], b: Sequence[Verdicts]) -> list[tuple[int, int, int]]:
    """(index, first, second) for the items graded on `name` in both runs."""
    found = []
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x is not None and y is not None and name in x and name in y:
            found.append((index, int(x[name]), int(y[name])))
    return found


def bootstrap_interval(
    deltas: Sequence[int], confidence: float = CONFIDENCE, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """The `confidence` interval of the mean of `deltas`, resampled with a fixed seed."""
    if not deltas:
        return (0.0, 0.0)
    rng, n = random.Random(seed), len(deltas)
    means = sorted(sum(rng.choices(deltas, k=n)) / n for _ in range(RESAMPLES))
    tail = (1 - confidence) / 2
    low = means[int(tail * (RESAMPLES - 1))]
    high = means[round((1 - tail) * (RESAMPLES - 1))]
    return (round(low, 6), round(high, 6))


def compare(
    names: Sequence[str],
    first: Sequence[Verdicts],
    second: Sequence[Verdicts],
    confidence: float = CONFIDENCE,
) -> list[Difference]:
    rows = []
    for name in names:
        pairs = _pairs(name, first, second)
        n = len(pairs) or 1
        rate_a = sum(p[1] for p in pairs) / n
        rate_b = sum(p[2] for p in pairs) / n
        deltas = [second - first for _, first, second in pairs]
        changed = [
            {"item": index, "first": bool(x), "second": bool(y)} for index, x, y in pairs if x != y
        ]
        interval = bootstrap_interval(deltas, confidence)
        rows.append(
            Difference(
                name, (rate_a, rate_b), round(rate_b - rate_a, 6), interval, changed, len(pairs)
            )
        )
    return rows


def gate_refusal(
    differences: Sequence[Difference], min_improvement: float, confidence: float
) -> str | None:
    """Why the evidence does not show an improvement of `min_improvement` on every criterion
    at `confidence` (the interval's lower bound must reach it), or None when it does."""
    for row in differences:
        if row.interval[0] < min_improvement:
            return (
                f"criterion '{row.criterion}': pass rate {row.rates[0]:.3f} -> {row.rates[1]:.3f}, "
                f"improvement {row.difference:+.3f} with a {confidence:.0%} interval "
                f"[{row.interval[0]:+.3f}, {row.interval[1]:+.3f}] whose lower bound is under "
                f"the required {min_improvement:+.3f}"
            )
    return None
