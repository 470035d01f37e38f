"""The body of `POST /v1/sweeps`: its shape, its checks, and the job body of each trial.

A sweep searches hyperparameters over ordinary fine-tuning jobs (its trials). `space` names, per
hyperparameter, a list of values to try (each within the job API's own limits), or for
`learning_rate_multiplier` a `{"min", "max", "scale"}` range sampled on a log (or linear) scale,
which only a random search can use. `method` is the jobs API's, whose hyperparameters stay fixed
for every trial. `parse_sweep_request` raises `InvalidRequest` naming the `param`
(`space.n_epochs.1`, `max_trials`, ...). Checks needing the org, its files or the price table are
the jobs API's own, made on the first trial's body (`trial_body`).

`objective` is a validation metric (`valid_loss`, `valid_mean_token_accuracy`) or
`eval:<criterion>`: the pass rate on that testing criterion of the sweep's `eval_id`, from the
eval run each trial's model gets when it succeeds (`domain.evals.loop`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from service.domain.jobs.request import (
    MAX_SEED,
    METADATA_PAIRS,
    BatchSize,
    Beta,
    Epochs,
    LearningRate,
    Metadata,
    Method,
    Suffix,
    invalid_request,
    validate_body,
)
from service.errors import InvalidRequest

MAX_TRIALS = 100
MAX_VALUES = 50
SWEEP_KEY = "tunegate_sweep"  # in each trial job's metadata: the sweep it belongs to
TRIAL_KEY = "tunegate_trial"  # and its index in the sweep
RESERVED_KEYS = frozenset({SWEEP_KEY, TRIAL_KEY, "tunegate_job_id"})
HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier", "beta")
Metric = Literal["valid_loss", "valid_mean_token_accuracy"]
METRICS: tuple[Metric, ...] = ("valid_loss", "valid_mean_token_accuracy")
EVAL_OBJECTIVE = "eval:"  # `eval:<testing criterion name>`
MAX_CRITERION_NAME = 256


def _check_objective(value: object) -> object:
    message = 'must be "valid_loss", "valid_mean_token_accuracy" or "eval:<testing criterion name>"'
    if not isinstance(value, str):
        raise PydanticCustomError("objective", message)
    name = value.removeprefix(EVAL_OBJECTIVE) if value.startswith(EVAL_OBJECTIVE) else None
    if value not in METRICS and not (name and len(name) <= MAX_CRITERION_NAME):
        raise PydanticCustomError("objective", message)
    return value


Objective = Annotated[
    str,
    PlainValidator(
        _check_objective,
        json_schema_input_type=Annotated[
            str,
            Field(
                pattern=r"^(valid_loss|valid_mean_token_accuracy|eval:.+)$",
                description="A validation metric, or eval:<testing criterion name> of eval_id.",
            ),
        ],
    ),
]


def eval_criterion(objective: str) -> str | None:
    """The testing criterion an `eval:<name>` objective ranks by."""
    return objective.removeprefix(EVAL_OBJECTIVE) if objective.startswith(EVAL_OBJECTIVE) else None


def curve_metric(objective: str) -> Metric:
    """The validation metric the per-step curves (early stopping, the chart) follow: the
    objective's own, or the validation loss under an eval objective."""
    return "valid_mean_token_accuracy" if objective == "valid_mean_token_accuracy" else "valid_loss"


_SHAPES = frozenset({"list_type", "model_type", "model_attributes_type", "dict_type"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """A continuous range for random search; `log` samples evenly in log space."""

    min: Annotated[float, Field(gt=0, le=10)]
    max: Annotated[float, Field(gt=0, le=10)]
    scale: Literal["log", "linear"] = "log"

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min >= self.max:
            raise ValueError("min must be below max")
        return self


EpochsValues = Annotated[list[Epochs], Field(min_length=1, max_length=MAX_VALUES)]
BatchSizeValues = Annotated[list[BatchSize], Field(min_length=1, max_length=MAX_VALUES)]
RateValues = Annotated[list[LearningRate], Field(min_length=1, max_length=MAX_VALUES)]
BetaValues = Annotated[list[Beta], Field(min_length=1, max_length=MAX_VALUES)]


class Space(_Strict):
    n_epochs: EpochsValues | None = None
    batch_size: BatchSizeValues | None = None
    learning_rate_multiplier: RateValues | Range | None = None
    beta: BetaValues | None = None

    def dimensions(self) -> dict[str, list[Any] | Range]:
        """The hyperparameters searched, in a fixed order."""
        found = {name: getattr(self, name) for name in HYPERPARAMETERS}
        return {name: value for name, value in found.items() if value is not None}


class Search(_Strict):
    type: Literal["grid", "random"]
    seed: Annotated[int, Field(strict=True, ge=0, le=MAX_SEED)] | None = None


class EarlyStop(_Strict):
    """Cancel a running trial whose objective at a step (from `min_steps` on) is worse than the
    best finished trial's at the same step by more than `margin` (in the objective's units)."""

    min_steps: Annotated[int, Field(ge=1)] = 1
    margin: Annotated[float, Field(ge=0)] = 0.0


class SweepRequest(_Strict):
    model: str
    training_file: str
    validation_file: str | None = None
    validation_split: Annotated[float, Field(gt=0, lt=0.5)] | None = None
    method: Method | None = None
    search: Search
    space: Space
    max_trials: Annotated[int, Field(ge=1, le=MAX_TRIALS)] | None = None
    max_parallel: Annotated[int, Field(ge=1, le=MAX_TRIALS)] = 4
    objective: Objective = "valid_loss"
    eval_id: str | None = None  # tunegate's: every trial's model is evaluated (see `jobs`)
    early_stop: EarlyStop | None = None
    training_token_budget: Annotated[int, Field(ge=1)] | None = None
    suffix: Suffix | None = None
    seed: Annotated[int, Field(strict=True, ge=0, le=MAX_SEED)] | None = None
    metadata: Metadata | None = None

    @property
    def method_type(self) -> str:
        return self.method.type if self.method else "supervised"


def parse_sweep_request(body: bytes | Mapping[str, Any]) -> SweepRequest:
    try:
        request = validate_body(SweepRequest, body)
    except ValidationError as error:
        raise _invalid(error) from None
    check_sweep_request(request)
    return request


def check_sweep_request(request: SweepRequest) -> None:
    _check_validation(request)
    _check_method(request)
    _check_space(request)
    _check_trials(request)
    _check_metadata(request.metadata)
    _check_objective_eval(request)


def grid_size(space: Space) -> int:
    sizes = [len(values) for values in space.dimensions().values() if isinstance(values, list)]
    return math.prod(sizes)


def fixed_hyperparameters(request: SweepRequest) -> dict[str, Any]:
    """The hyperparameters `method` sets for every trial."""
    method = request.method
    if method is None:
        return {}
    section = method.supervised if method.type == "supervised" else method.dpo
    values = section.hyperparameters if section and section.hyperparameters else None
    return values.model_dump(exclude_none=True) if values else {}


def trial_body(
    request: SweepRequest, hyperparameters: Mapping[str, Any], seed: int, metadata: dict[str, str]
) -> dict[str, Any]:
    """The `POST /v1/fine_tuning/jobs` body of one trial."""
    kind = request.method_type
    values = {**fixed_hyperparameters(request), **hyperparameters}
    body: dict[str, Any] = {
        "model": request.model,
        "training_file": request.training_file,
        "method": {"type": kind, kind: {"hyperparameters": values}},
        "seed": seed,
        "metadata": {**(request.metadata or {}), **metadata},
    }
    optional = {
        "validation_file": request.validation_file,
        "validation_split": request.validation_split,
        "suffix": request.suffix,
        "eval_id": request.eval_id,
    }
    return body | {name: value for name, value in optional.items() if value is not None}


def _check_validation(request: SweepRequest) -> None:
    if request.validation_file is None and request.validation_split is None:
        raise InvalidRequest(
            "A sweep ranks trials on validation metrics: send validation_file or validation_split.",
            param="validation_file",
        )
    if request.validation_file is not None and request.validation_split is not None:
        raise InvalidRequest(
            "validation_split and validation_file are mutually exclusive: send one.",
            param="validation_split",
        )


def _check_method(request: SweepRequest) -> None:
    kind = request.method_type
    if kind not in ("supervised", "dpo"):
        raise InvalidRequest(
            "A sweep runs supervised or dpo fine-tuning.", param="method.type", code="invalid_value"
        )
    method = request.method
    other = "dpo" if kind == "supervised" else "supervised"
    if method is not None and (getattr(method, other) or method.reinforcement) is not None:
        raise InvalidRequest(f"method.{other} was given but method.type is {kind!r}.")


def _check_space(request: SweepRequest) -> None:
    dimensions = request.space.dimensions()
    if not dimensions:
        raise InvalidRequest("space names no hyperparameter to search.", param="space")
    fixed = fixed_hyperparameters(request)
    for name, values in dimensions.items():
        param = f"space.{name}"
        if name == "beta" and request.method_type != "dpo":
            raise InvalidRequest("beta only applies to dpo fine-tuning.", param=param)
        if name in fixed:
            raise InvalidRequest(
                f"{name} is both fixed in method and searched in space.", param=param
            )
        if isinstance(values, Range) and request.search.type == "grid":
            raise InvalidRequest(
                f"A grid search needs a list of values for {name}; a range needs a random search.",
                param=param,
            )
        if isinstance(values, list) and len({repr(v) for v in values}) != len(values):
            raise InvalidRequest(f"{param} lists a value more than once.", param=param)


def _check_trials(request: SweepRequest) -> None:
    if request.search.type == "random":
        if request.max_trials is None:
            raise InvalidRequest("A random search needs max_trials.", param="max_trials")
        return
    size = grid_size(request.space)
    if size > MAX_TRIALS:
        raise InvalidRequest(
            f"The grid has {size} points; a sweep runs at most {MAX_TRIALS} trials.",
            param="space",
        )
    if request.max_trials is not None and request.max_trials < size:
        raise InvalidRequest(
            f"The grid has {size} points but max_trials is {request.max_trials}.",
            param="max_trials",
        )


def _check_metadata(metadata: Mapping[str, str] | None) -> None:
    reserved = sorted(RESERVED_KEYS & set(metadata or {}))
    if reserved:
        raise InvalidRequest(
            f"The metadata key {reserved[0]!r} is reserved by this gateway.", param="metadata"
        )
    if len(metadata or {}) > METADATA_PAIRS - 2:
        raise InvalidRequest(
            f"A sweep's metadata holds at most {METADATA_PAIRS - 2} pairs: each trial adds two.",
            param="metadata",
        )


def _check_objective_eval(request: SweepRequest) -> None:
    if eval_criterion(request.objective) is not None and request.eval_id is None:
        raise InvalidRequest(
            "An eval objective ranks trials by an eval's criterion: send eval_id.",
            param="eval_id",
        )


def _invalid(error: ValidationError) -> InvalidRequest:
    # Of a union's failures, the one that got furthest into the value says what is wrong.
    first = max(error.errors(), key=lambda item: (len(item["loc"]), item["type"] not in _SHAPES))
    param = ".".join(str(part) for part in first["loc"] if not _union_tag(part)) or None
    return invalid_request(first, param)


def _union_tag(part: object) -> bool:
    """Pydantic names the union member tried (`list[...]`, `Range`) in an error's location."""
    return isinstance(part, str) and (part.endswith("]") or part == "Range")
