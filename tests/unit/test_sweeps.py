"""Sweep planning and scoring: grids in order, seeded random draws (log ranges included), the
objective's direction, full-validation scores, early-stop decisions and the best trial."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest

from service.domain.jobs.metrics import StepRow
from service.domain.jobs.request import parse_job_request
from service.domain.sweeps.request import (
    EarlyStop,
    Range,
    Space,
    parse_sweep_request,
    trial_body,
)
from service.domain.sweeps.trials import (
    Score,
    best_score,
    final_objective,
    objective_curve,
    plan_trials,
    sample_range,
    should_stop,
    sweep_of,
    trial_tokens,
    value_at,
)
from service.errors import InvalidRequest

GRID = Space.model_validate({"n_epochs": [3, 9], "learning_rate_multiplier": [0.3, 1.0, 3.0]})
RULE = EarlyStop(min_steps=3, margin=0.1)


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "training_file": "file-t",
        "validation_file": "file-v",
        "search": {"type": "grid"},
        "space": {"n_epochs": [3, 9]},
    }
    return base | fields


def test_a_grid_is_every_combination_in_order() -> None:
    plan = plan_trials(GRID, "grid", None, None)
    assert plan == [
        {"n_epochs": 3, "learning_rate_multiplier": 0.3},
        {"n_epochs": 3, "learning_rate_multiplier": 1.0},
        {"n_epochs": 3, "learning_rate_multiplier": 3.0},
        {"n_epochs": 9, "learning_rate_multiplier": 0.3},
        {"n_epochs": 9, "learning_rate_multiplier": 1.0},
        {"n_epochs": 9, "learning_rate_multiplier": 3.0},
    ]


def test_a_random_search_over_lists_draws_distinct_points_from_its_seed() -> None:
    first = plan_trials(GRID, "random", 11, 4)
    assert first == plan_trials(GRID, "random", 11, 4)
    assert len(first) == 4 and all(
        point in plan_trials(GRID, "grid", None, None) for point in first
    )
    assert len({tuple(sorted(point.items())) for point in first}) == 4
    assert any(plan_trials(GRID, "random", seed, 4) != first for seed in range(5))
    assert len(plan_trials(GRID, "random", 11, 50)) == 6  # never more than the grid holds


def test_a_log_range_samples_evenly_in_log_space() -> None:
    space = Space.model_validate(
        {"n_epochs": [2, 4], "learning_rate_multiplier": {"min": 0.01, "max": 10}}
    )
    plan = plan_trials(space, "random", 3, 400)
    rates = [point["learning_rate_multiplier"] for point in plan]
    assert all(0.01 <= rate <= 10 for rate in rates)
    assert {point["n_epochs"] for point in plan} == {2, 4}
    # log-uniform: the median is the geometric middle (0.316), not the arithmetic one (5.0)
    assert 0.15 < statistics.median(rates) < 0.7
    assert sum(rate < 0.1 for rate in rates) > 100  # a third of the log span, a third of draws
    assert all(len(f"{rate:g}".replace("0.", "").lstrip("0")) <= 5 for rate in rates)


def test_a_linear_range_samples_linearly() -> None:
    import random

    rng = random.Random(5)
    draws = [sample_range(Range(min=1, max=3, scale="linear"), rng) for _ in range(400)]
    assert 1.8 < statistics.median(draws) < 2.2


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"validation_file": None}, "validation_file"),
        ({"validation_split": 0.2}, "validation_split"),
        ({"space": {}}, "space"),
        ({"space": {"n_epochs": [3, 3]}}, "space.n_epochs"),
        ({"space": {"n_epochs": [0]}}, "space.n_epochs.0"),
        (
            {"space": {"learning_rate_multiplier": {"min": 0.1, "max": 2}}},
            "space.learning_rate_multiplier",
        ),
        (
            {"space": {"learning_rate_multiplier": {"min": 0.1, "max": 20}}},
            "space.learning_rate_multiplier.max",
        ),
        ({"space": {"beta": [0.1]}}, "space.beta"),
        ({"space": {"temperature": [1]}}, "space.temperature"),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}},
            "space.n_epochs",
        ),
        ({"method": {"type": "reinforcement"}}, "method.type"),
        ({"max_trials": 1}, "max_trials"),
        ({"search": {"type": "random"}}, "max_trials"),
        ({"search": {"type": "sideways"}}, "search.type"),
        ({"objective": "train_loss"}, "objective"),
        ({"early_stop": {"min_steps": 0}}, "early_stop.min_steps"),
        ({"metadata": {"tunegate_trial": "1"}}, "metadata"),
        ({"metadata": {f"k{i}": "v" for i in range(15)}}, "metadata"),
    ],
)
def test_bad_requests_name_the_param(fields: dict[str, Any], param: str) -> None:
    given = {key: value for key, value in (body() | fields).items() if value is not None}
    with pytest.raises(InvalidRequest) as raised:
        parse_sweep_request(given)
    assert raised.value.param == param


def test_a_trial_body_is_a_job_request_with_the_sweep_in_its_metadata() -> None:
    request = parse_sweep_request(
        body(
            method={"type": "dpo", "dpo": {"hyperparameters": {"batch_size": 2}}},
            space={"beta": [0.1, 0.5]},
            validation_file=None,
            validation_split=0.2,
            metadata={"team": "search"},
            suffix="bot",
        )
    )
    trial = trial_body(request, {"beta": 0.5}, 42, {"tunegate_sweep": "sweep-1"})
    job = parse_job_request(trial)
    assert job.method is not None and job.method.dpo is not None
    assert job.method.dpo.hyperparameters is not None
    assert job.method.dpo.hyperparameters.model_dump(exclude_none=True) == {
        "batch_size": 2,
        "beta": 0.5,
    }
    assert (job.seed, job.validation_split, job.suffix) == (42, 0.2, "bot")
    assert job.metadata == {"team": "search", "tunegate_sweep": "sweep-1"}
    assert sweep_of(job.metadata) == "sweep-1" and sweep_of(None) is None


def rows(*values: tuple[int, float | None, float | None]) -> list[StepRow]:
    return [StepRow(step=step, valid_loss=v, full_valid_loss=f) for step, v, f in values]


def test_a_finished_trial_scores_full_validation_at_its_last_step_when_given() -> None:
    assert final_objective(rows((1, 2.0, None), (10, 0.5, 0.45)), "valid_loss") == (10, 0.45)
    assert final_objective(rows((1, 2.0, None), (10, 0.5, None)), "valid_loss") == (10, 0.5)
    assert final_objective(rows((10, None, None), (5, 0.7, 0.6)), "valid_loss") == (5, 0.6)
    assert final_objective([StepRow(step=3, train_loss=1.0)], "valid_loss") is None
    accuracy = [StepRow(step=4, valid_mean_token_accuracy=0.8)]
    assert final_objective(accuracy, "valid_mean_token_accuracy") == (4, 0.8)


def test_the_best_is_lowest_loss_or_highest_accuracy_the_earliest_on_a_tie() -> None:
    found = [Score(0, 0.5), Score(1, 0.3), Score(2, 0.3), Score(3, 0.9)]
    assert best_score(found, "valid_loss") == Score(1, 0.3)
    assert best_score(found, "valid_mean_token_accuracy") == Score(3, 0.9)
    assert best_score([], "valid_loss") is None


def test_the_reference_is_interpolated_between_its_steps_and_not_beyond() -> None:
    curve = [(10, 1.0), (20, 0.5)]
    assert value_at(curve, 15) == pytest.approx(0.75)
    assert value_at(curve, 10) == 1.0 and value_at(curve, 20) == 0.5
    assert value_at(curve, 5) is None and value_at(curve, 25) is None
    assert value_at([(7, 0.4)], 7) == 0.4
    assert value_at([], 1) is None


def test_early_stop_needs_the_minimum_steps_and_the_margin() -> None:
    reference = [(1, 1.0), (2, 0.8), (4, 0.6), (8, 0.4)]
    behind_early = [(1, 2.0), (2, 1.5), (3, 0.85), (4, 0.65)]
    decision = should_stop(behind_early, reference, "valid_loss", RULE)
    assert decision is not None and decision.step == 3  # not at 1 or 2: before min_steps
    assert decision.reference == pytest.approx(0.7)  # between steps 2 and 4 of the reference
    within_margin = [(3, 0.79), (4, 0.69), (8, 0.49)]
    assert should_stop(within_margin, reference, "valid_loss", RULE) is None
    ahead = [(3, 0.5), (8, 0.3)]
    assert should_stop(ahead, reference, "valid_loss", RULE) is None
    past_the_reference = [(9, 5.0), (12, 5.0)]
    assert should_stop(past_the_reference, reference, "valid_loss", RULE) is None


def test_early_stop_on_accuracy_stops_the_less_accurate() -> None:
    reference = [(3, 0.8), (6, 0.9)]
    assert should_stop([(3, 0.75)], reference, "valid_mean_token_accuracy", RULE) is None
    decision = should_stop([(3, 0.6)], reference, "valid_mean_token_accuracy", RULE)
    assert decision is not None and decision.step == 3
    assert should_stop([(6, 1.0)], reference, "valid_mean_token_accuracy", RULE) is None


def test_the_curve_is_the_per_step_validation_values() -> None:
    found = [StepRow(step=2, valid_loss=0.9), StepRow(step=1, train_loss=3.0)]
    found.append(StepRow(step=3, valid_loss=0.7, full_valid_loss=0.1))
    assert objective_curve(found, "valid_loss") == [(2, 0.9), (3, 0.7)]


def test_trial_tokens_use_the_trials_epochs_or_the_default() -> None:
    assert trial_tokens(1000, 3, 4) == 3000
    assert trial_tokens(1000, "auto", 4) == 4000
    assert trial_tokens(1000, None, 4) == 4000
    assert math.isclose(trial_tokens(0, 5, 1), 0)
