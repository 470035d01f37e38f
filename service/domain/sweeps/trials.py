"""Hyperparameter sweeps, the pure part: which trials to run, how a trial scores, when to stop
one early, which is best.

`plan_trials` lists every trial's hyperparameters up front, so a sweep's trials are fixed at
creation and the same request and seed always plan the same sweep. A grid is the product of the
lists in `HYPERPARAMETERS` order. A random search draws from `random.Random(seed)`: without
replacement from the grid when every dimension is a list (no trial repeats another), otherwise
each dimension on its own, a range evenly in log space (or linearly), rounded to
`SIGNIFICANT` digits.

The objective is a validation metric: `valid_loss` (lower is better) or
`valid_mean_token_accuracy` (higher is better). A finished trial scores its final step's
full-validation value when the upstream reports one, else its validation value there
(`final_objective`). Under an eval objective (`eval:<criterion>`, higher is better) a trial
scores its model's pass rate on the criterion once its eval run has completed (`eval_score`);
its curves, and so early stopping, follow the validation loss (`curve_metric`).

Early stopping compares curves of the per-step validation values (`objective_curve`): a running
trial is stopped at the first step, from `min_steps` on, where it
is worse than the reference (the best finished trial) at the same step by more than the margin.
Trials report metrics at steps of their own schedule, so the reference's value at a step it did
not report is interpolated between its neighbours; past either end of its curve there is no
comparison.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.domain.evals.loop import pass_rate
from service.domain.jobs.metrics import StepRow
from service.domain.sweeps.request import (
    HYPERPARAMETERS,
    SWEEP_KEY,
    EarlyStop,
    Metric,
    Range,
    Space,
)

SIGNIFICANT = 4
MINIMISED = frozenset({"valid_loss"})
Curve = list[tuple[int, float]]


@dataclass(frozen=True, slots=True)
class Score:
    index: int  # the trial's place in the plan
    value: float


def plan_trials(
    space: Space, search: str, seed: int | None, max_trials: int | None
) -> list[dict[str, Any]]:
    """Every trial's hyperparameters, in the order they will run."""
    dimensions = space.dimensions()
    if search == "grid":
        return _grid(dimensions)
    rng = random.Random(seed)
    count = max_trials or 1
    if all(isinstance(values, list) for values in dimensions.values()):
        grid = _grid(dimensions)
        return rng.sample(grid, min(count, len(grid)))
    return [_draw(dimensions, rng) for _ in range(count)]


def _grid(dimensions: Mapping[str, Any]) -> list[dict[str, Any]]:
    names = list(dimensions)
    return [
        dict(zip(names, point, strict=True)) for point in itertools.product(*dimensions.values())
    ]


def _draw(dimensions: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    drawn: dict[str, Any] = {}
    for name in HYPERPARAMETERS:
        values = dimensions.get(name)
        if isinstance(values, Range):
            drawn[name] = sample_range(values, rng)
        elif values is not None:
            drawn[name] = rng.choice(values)
    return drawn


def sample_range(bounds: Range, rng: random.Random) -> float:
    if bounds.scale == "log":
        value = math.exp(rng.uniform(math.log(bounds.min), math.log(bounds.max)))
    else:
        value = rng.uniform(bounds.min, bounds.max)
    return min(bounds.max, max(bounds.min, _significant(value)))


def _significant(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT}g}")


# Scores


def is_better(value: float, than: float, objective: str) -> bool:
    return value < than if objective in MINIMISED else value > than


def shortfall(value: float, reference: float, objective: str) -> float:
    """How much worse `value` is than `reference` (negative when it is better)."""
    return value - reference if objective in MINIMISED else reference - value


def objective_curve(rows: Sequence[StepRow], objective: Metric) -> Curve:
    """The per-step validation values, by step."""
    points = ((row.step, getattr(row, objective)) for row in rows)
    return sorted((step, float(value)) for step, value in points if value is not None)


def final_objective(rows: Sequence[StepRow], objective: Metric) -> tuple[int, float] | None:
    """(step, value) a finished trial scores: at its last step with a validation value, the
    full-validation value if reported, else the validation value."""
    full = f"full_{objective}"
    for row in sorted(rows, key=lambda row: row.step, reverse=True):
        value = getattr(row, full)
        value = value if value is not None else getattr(row, objective)
        if value is not None:
            return row.step, float(value)
    return None


def eval_score(
    index: int, status: str | None, per_criterion: Sequence[Mapping[str, Any]], criterion: str
) -> Score | None:
    """A trial's score under an eval objective: its run's pass rate on `criterion`, once the
    run has completed (a run still going, failed or cancelled does not rank it)."""
    if status != "completed":
        return None
    rate = pass_rate(per_criterion, criterion)
    return Score(index, rate) if rate is not None else None


def best_score(scores: Sequence[Score], objective: str) -> Score | None:
    """The best score; on a tie the trial planned first."""
    best: Score | None = None
    for score in sorted(scores, key=lambda score: score.index):
        if best is None or is_better(score.value, best.value, objective):
            best = score
    return best


# Early stopping


def value_at(curve: Curve, step: int) -> float | None:
    """The curve's value at `step`, interpolated between reported steps; None outside it."""
    if not curve or step < curve[0][0] or step > curve[-1][0]:
        return None
    for (low_step, low), (high_step, high) in itertools.pairwise(curve):
        if low_step <= step <= high_step:
            share = (step - low_step) / (high_step - low_step)
            return low + share * (high - low)
    return curve[0][1]  # a one-point curve at exactly this step


@dataclass(frozen=True, slots=True)
class StopDecision:
    step: int
    value: float
    reference: float


def should_stop(
    curve: Curve, reference: Curve, objective: Metric, rule: EarlyStop
) -> StopDecision | None:
    """The first step at which the trial falls behind the reference by more than the margin."""
    for step, value in curve:
        if step < rule.min_steps:
            continue
        expected = value_at(reference, step)
        if expected is not None and shortfall(value, expected, objective) > rule.margin:
            return StopDecision(step, value, round(expected, 6))
    return None


def sweep_of(metadata: Mapping[str, str] | None) -> str | None:
    """The sweep a job belongs to, from its metadata."""
    return (metadata or {}).get(SWEEP_KEY)


def trial_tokens(billing_tokens: int, n_epochs: object, default_epochs: int) -> int:
    """A trial's estimated training tokens: the dataset's billing tokens times its epochs."""
    epochs = n_epochs if isinstance(n_epochs, int) else default_epochs
    return billing_tokens * epochs
