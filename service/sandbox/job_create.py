"""Turning `POST /v1/fine_tuning/jobs` into a sandbox job: OpenAI's checks, then a schedule.

Request errors (unknown model or file, bad hyperparameters, bad metadata) are immediate 400s,
as with OpenAI; a training file that does not validate still creates the job, which then
fails at the end of `validating_files` with `invalid_training_file`.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from service.sandbox import training
from service.sandbox.config import SandboxConfig
from service.sandbox.errors import ApiError, invalid
from service.sandbox.jobs import Job, Milestone
from service.sandbox.objects import JSON, StoredFile, TunedModel, resolve_base
from service.sandbox.training import Hyperparameters
from service.sandbox.training_data import TrainingData, TrainingFileError, read_training_file

METHODS = ("supervised", "dpo", "reinforcement")
LIMITS: dict[str, tuple[type, float, float]] = {
    "n_epochs": (int, 1, 50),
    "batch_size": (int, 1, 256),
    "learning_rate_multiplier": (float, 1e-6, 10.0),
    "beta": (float, 1e-6, 2.0),
    "compute_multiplier": (float, 1e-6, 10.0),
    "eval_interval": (int, 1, 1000),
    "eval_samples": (int, 1, 1000),
}
METADATA_RULE = "metadata maps at most 16 keys (up to 64 chars) to strings (up to 512 chars)"
EXTRA_DEFAULTS: dict[str, JSON] = {
    "supervised": {},
    "dpo": {"beta": 0.1},
    "reinforcement": {"compute_multiplier": 1.0, "eval_interval": 1, "eval_samples": 1},
}


def _base_of(model: Any, models: dict[str, TunedModel]) -> str:
    if isinstance(model, str):
        if model in models and models[model].listed:
            return model.split(":")[1]
        base = resolve_base(model)
        if base is not None:
            return base
    message = f"Model {model} is not available for fine-tuning or does not exist."
    raise ApiError(400, message, param="model", code="model_not_available")


def _file(files: dict[str, StoredFile], file_id: Any, param: str) -> StoredFile:
    found = files.get(file_id) if isinstance(file_id, str) else None
    if found is None or found.purpose != "fine-tune":
        raise invalid(f"invalid {param}: {file_id}", param=param)
    return found


def _method(body: JSON) -> tuple[str, JSON]:
    method = body.get("method")
    if method is None:
        return "supervised", {"hyperparameters": body.get("hyperparameters") or {}}
    kind = method.get("type") if isinstance(method, dict) else None
    if kind not in METHODS:
        raise invalid("method.type must be one of supervised, dpo, reinforcement", "method.type")
    settings = method.get(kind) or {}
    if kind == "reinforcement" and not settings.get("grader"):
        raise invalid("A grader is required for reinforcement fine-tuning", "method.grader")
    return kind, dict(settings)


def _checked(name: str, value: Any, param: str) -> Any:
    kind, low, high = LIMITS[name]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or (kind is int and not isinstance(value, int)) or not low <= value <= high:
        raise invalid(f"Invalid value for {name}: {value!r}", param=param)
    return kind(value)


def _resolve(kind: str, requested: JSON, examples: int) -> tuple[Hyperparameters, JSON]:
    auto = training.auto_hyperparameters(examples)
    values: JSON = {**vars(auto), **EXTRA_DEFAULTS[kind]}
    for name, value in requested.items():
        if name in values and value != "auto":
            values[name] = _checked(name, value, f"method.{kind}.hyperparameters.{name}")
    base = {name: values.pop(name) for name in vars(auto)}
    return Hyperparameters(**base), {**base, **values}


def _read(file: StoredFile, base: str, kind: str, minimum: int) -> TrainingData:
    return read_training_file(file.content, model=base, method=kind, min_examples=minimum)


def _data(
    train: StoredFile, valid: StoredFile | None, base: str, kind: str, config: SandboxConfig
) -> tuple[TrainingData | None, int | None, JSON | None]:
    param = "training_file"
    try:
        data = _read(train, base, kind, config.min_examples)
        param = "validation_file"
        valid_data = _read(valid, base, kind, 1) if valid else None
    except TrainingFileError as error:
        failure = {"code": f"invalid_{param}", "message": str(error), "param": param}
        return None, None, failure
    return data, valid_data.examples if valid_data else None, None


def _metadata_pair(key: Any, value: Any) -> bool:
    return isinstance(key, str) and isinstance(value, str) and len(key) <= 64 and len(value) <= 512


def _metadata(value: Any) -> JSON | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 16:
        raise invalid(METADATA_RULE, "metadata")
    if not all(_metadata_pair(key, item) for key, item in value.items()):
        raise invalid(METADATA_RULE, "metadata")
    return dict(value)


def _model_name(base: str, org_name: str, suffix: Any) -> str:
    if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
        raise invalid("suffix must be a string of at most 64 characters", "suffix")
    short = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))
    return f"ft:{base}:{org_name}:{suffix or ''}:{short}"


def _schedule(config: SandboxConfig, steps: list[int] | None) -> list[Milestone]:
    validated = config.validating_seconds
    if steps is None:
        return [Milestone(validated, "failed")]
    started = validated + config.queued_seconds
    plan = [Milestone(validated, "validated"), Milestone(started, "started")]
    plan += [
        Milestone(started + (i + 1) * config.step_seconds, "step", s) for i, s in enumerate(steps)
    ]
    return [*plan, Milestone(plan[-1].at, "succeeded")]


def build_job(
    body: JSON, files: dict[str, StoredFile], models: dict[str, TunedModel], config: SandboxConfig
) -> Job:
    base = _base_of(body.get("model"), models)
    train = _file(files, body.get("training_file"), "training_file")
    valid_id = body.get("validation_file")
    valid = _file(files, valid_id, "validation_file") if valid_id is not None else None
    kind, settings = _method(body)
    seed = body.get("seed")
    request = {
        **body,
        "seed": seed if isinstance(seed, int) else secrets.randbelow(2**31),
        "metadata": _metadata(body.get("metadata")),
    }
    model_name = _model_name(base, config.org_name, body.get("suffix"))
    data, valid_examples, failure = _data(train, valid, base, kind, config)
    examples = data.examples if data else config.min_examples
    hp, resolved = _resolve(kind, settings.get("hyperparameters") or {}, examples)
    total = training.total_steps(hp, examples)
    steps = training.reported_steps(total, config.total_steps) if data else None
    return Job(
        request=request,
        model=body["model"] if resolve_base(body["model"]) is None else base,
        model_name=model_name,
        method={"type": kind, kind: {**settings, "hyperparameters": resolved}},
        hp=hp,
        data=data,
        valid_examples=valid_examples,
        schedule=_schedule(config, steps),
        failure=failure,
    )
