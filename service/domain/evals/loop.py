"""Evals in the fine-tuning loop, the pure part: which sampling template a job's eval runs use,
the bodies and ids of those runs, and a criterion's score from a finished run.

An eval holds no items or prompts of its own (OpenAI's shape): its first run that samples a model
(`completions`) does. That run's data source, less its `model`, is the eval's sampling template:
a job naming the eval samples its tuned model, and its base model, with the same items, input
messages and sampling parameters, so the runs compare item by item.

The runs a job's finishing step creates have ids derived from what they are for, so a step that
is run again finds the run it made instead of making a second: the tuned model's run from the
job, the base model's from the eval, the base model, the template and a generation that moves on
only when the run of the one before failed or was cancelled.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

RUN_PREFIX = "evalrun_"
LIVE = frozenset({"queued", "in_progress", "completed"})
JOB_KEY = "tunegate_job"  # in a run's metadata: the job whose model it samples
KIND_KEY = "tunegate_eval_of"  # "model" (the tuned model) or "base"
SWEEP_KEY = "tunegate_sweep"


def sampling_template(data_source: Mapping[str, Any]) -> dict[str, Any] | None:
    """A run's data source less its model, if it samples one."""
    if data_source.get("type") != "completions":
        return None
    return {name: value for name, value in data_source.items() if name != "model"}


def run_body(
    template: Mapping[str, Any], model: str, name: str, metadata: Mapping[str, str]
) -> dict[str, Any]:
    """The `POST /v1/evals/{id}/runs` body sampling `model` with the template."""
    return {
        "name": name,
        "metadata": dict(metadata),
        "data_source": {**template, "model": model},
    }


def _digest(*parts: object) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def model_run_id(job_id: str, eval_id: str) -> str:
    return RUN_PREFIX + _digest("model", job_id, eval_id)


def base_run_id(eval_id: str, base_model: str, template: Mapping[str, Any], generation: int) -> str:
    return RUN_PREFIX + _digest("base", eval_id, base_model, template, generation)


def samples_like(data_source: Mapping[str, Any], template: Mapping[str, Any], model: str) -> bool:
    """Whether a run's data source is the template sampling `model`."""
    return dict(data_source) == {**template, "model": model}


def pass_rate(per_criterion: Sequence[Mapping[str, Any]], criterion: str) -> float | None:
    """A finished run's pass rate on one criterion (None: it graded no item on it)."""
    for row in per_criterion:
        if row.get("testing_criteria") == criterion:
            graded = int(row.get("passed", 0)) + int(row.get("failed", 0))
            return int(row.get("passed", 0)) / graded if graded else None
    return None
