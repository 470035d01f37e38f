"""Evals in the fine-tuning loop, the pure parts: the sampling template and the runs' bodies and
ids, a criterion's pass rate, the sweep's eval objective (parsing, scoring, the best trial, the
curve early stopping follows) and when a finished job plans its `evals` step."""

from __future__ import annotations

import time
from typing import Any

import pytest

from service.domain.evals.loop import (
    base_run_id,
    model_run_id,
    pass_rate,
    run_body,
    samples_like,
    sampling_template,
)
from service.domain.jobs.request import parse_job_request, upstream_body
from service.domain.jobs.states import JobState
from service.domain.sweeps.request import (
    curve_metric,
    eval_criterion,
    parse_sweep_request,
    trial_body,
)
from service.domain.sweeps.trials import Score, best_score, eval_score, is_better
from service.errors import InvalidRequest
from service.ids import is_valid
from service.operations.jobs.records import steps_for
from service.store.jobs import JobRecord

SOURCE: dict[str, Any] = {
    "type": "completions",
    "model": "gpt-4o-mini",
    "source": {"type": "file_content", "content": [{"item": {"question": "q"}}]},
    "input_messages": {
        "type": "template",
        "template": [{"role": "user", "content": "{{item.question}}"}],
    },
}
RESULTS = [
    {"testing_criteria": "exact", "passed": 3, "failed": 1},
    {"testing_criteria": "close", "passed": 0, "failed": 0},
]


def sweep(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "training_file": "file-t",
        "validation_file": "file-v",
        "search": {"type": "grid"},
        "space": {"n_epochs": [3, 9]},
    }
    return body | fields


def test_the_template_is_a_sampling_run_less_its_model_and_samples_any_model() -> None:
    template = sampling_template(SOURCE)
    assert template is not None and "model" not in template
    assert template["input_messages"] == SOURCE["input_messages"]
    assert sampling_template({"type": "jsonl", "source": SOURCE["source"]}) is None
    body = run_body(template, "ft:gpt-4o-mini:acme::x1", "tuned", {"tunegate_job": "ftjob-1"})
    assert body["data_source"] == {**SOURCE, "model": "ft:gpt-4o-mini:acme::x1"}
    assert body["metadata"] == {"tunegate_job": "ftjob-1"}
    assert samples_like(SOURCE, template, "gpt-4o-mini")
    assert not samples_like(SOURCE, template, "gpt-4.1-nano")


def test_run_ids_are_well_formed_and_fixed_by_what_the_run_is_for() -> None:
    template = sampling_template(SOURCE) or {}
    first = model_run_id("ftjob-a", "eval_x")
    assert first == model_run_id("ftjob-a", "eval_x") and is_valid("run", first)
    assert first != model_run_id("ftjob-b", "eval_x")
    base = base_run_id("eval_x", "gpt-4o-mini", template, 0)
    assert is_valid("run", base) and base == base_run_id("eval_x", "gpt-4o-mini", template, 0)
    others = {
        base_run_id("eval_x", "gpt-4o-mini", template, 1),
        base_run_id("eval_x", "gpt-4.1-nano", template, 0),
        base_run_id("eval_y", "gpt-4o-mini", template, 0),
        base_run_id("eval_x", "gpt-4o-mini", {**template, "sampling_params": {"seed": 1}}, 0),
    }
    assert base not in others and len(others) == 4


def test_a_pass_rate_counts_the_graded_items_of_one_criterion() -> None:
    assert pass_rate(RESULTS, "exact") == 0.75
    assert pass_rate(RESULTS, "close") is None  # graded nothing
    assert pass_rate(RESULTS, "missing") is None


@pytest.mark.parametrize("objective", ["valid_loss", "valid_mean_token_accuracy", "eval:exact"])
def test_an_objective_is_a_metric_or_an_eval_criterion(objective: str) -> None:
    request = parse_sweep_request(sweep(objective=objective, eval_id="eval_x"))
    assert request.objective == objective
    assert eval_criterion(objective) == ("exact" if objective == "eval:exact" else None)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"objective": "eval:", "eval_id": "eval_x"}, "objective"),
        ({"objective": "accuracy"}, "objective"),
        ({"objective": {"eval_criterion": "exact"}}, "objective"),
        ({"objective": "eval:exact"}, "eval_id"),
    ],
)
def test_a_bad_objective_names_its_param(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_sweep_request(sweep(**fields))
    assert raised.value.param == param


def test_an_eval_objective_ranks_completed_runs_highest_first_and_curves_follow_the_loss() -> None:
    assert eval_score(0, "in_progress", RESULTS, "exact") is None
    assert eval_score(0, "failed", RESULTS, "exact") is None
    assert eval_score(0, "completed", RESULTS, "close") is None
    assert eval_score(2, "completed", RESULTS, "exact") == Score(2, 0.75)
    scores = [Score(0, 0.5), Score(1, 0.75), Score(2, 0.75)]
    assert best_score(scores, "eval:exact") == Score(1, 0.75)
    assert is_better(0.9, 0.1, "eval:exact") and not is_better(0.9, 0.1, "valid_loss")
    assert curve_metric("eval:exact") == "valid_loss"
    assert curve_metric("valid_mean_token_accuracy") == "valid_mean_token_accuracy"


def test_the_eval_id_reaches_every_trial_but_never_the_upstream() -> None:
    request = parse_sweep_request(sweep(eval_id="eval_x", objective="eval:exact"))
    body = trial_body(request, {"n_epochs": 3}, 7, {"tunegate_sweep": "sweep-1"})
    job = parse_job_request(body)
    assert job.eval_id == "eval_x"
    assert "eval_id" not in upstream_body(job)


def job(state: JobState, **request: Any) -> JobRecord:
    return JobRecord(
        id="ftjob-1",
        org_id="org_1",
        created_at=int(time.time()),
        seq=time.time(),
        request={"model": "gpt-4o-mini", "training_file": "file-t", **request},
        base_model="gpt-4o-mini",
        seed=1,
        state=state,
        upstream_id="ftjob-up",
    )


def test_only_a_succeeded_job_naming_an_eval_plans_its_eval_runs_before_the_callback() -> None:
    steps = steps_for(job(JobState.SUCCEEDED, eval_id="eval_x"), observed=True)
    assert steps == ["promote", "metrics", "usage", "files", "audit", "evals", "callback"]
    swept = job(JobState.SUCCEEDED, eval_id="eval_x", metadata={"tunegate_sweep": "sweep-1"})
    assert steps_for(swept, observed=True)[-3:] == ["evals", "callback", "sweep"]
    assert "evals" not in steps_for(job(JobState.FAILED, eval_id="eval_x"), observed=True)
    assert "evals" not in steps_for(job(JobState.SUCCEEDED), observed=True)
