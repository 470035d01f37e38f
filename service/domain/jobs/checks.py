"""Whether a parsed job request may run: model, method, files, and the org's policy.

`check_job_request` is pure: it is handed the org's policy, the price table and what tunegate
knows of the two files (their dataset reports' formats, their status), and returns the facts
the job needs or raises `InvalidRequest` with the `param` OpenAI would name. Ownership of files
and of a tuned model being tuned further is the caller's to check (it needs the store).
"""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.datasets.report import DatasetFormat
from service.domain.datasets.splits import MIN_TRAIN, MIN_VALIDATION
from service.domain.jobs.request import JobRequest, MethodType
from service.domain.pricing import PriceTable, base_model_of, resolve_model
from service.domain.tenancy.policy import Policy, model_allowed
from service.errors import InvalidRequest

FINE_TUNE = "fine-tune"
USABLE_FILE_STATUSES = frozenset({"uploaded", "processed"})


@dataclass(frozen=True, slots=True)
class FileFacts:
    id: str
    format: DatasetFormat | None  # from the file's dataset report
    status: str = "processed"
    purpose: str = FINE_TUNE
    examples: int | None = None


@dataclass(frozen=True, slots=True)
class CheckedJob:
    request: JobRequest
    base_model: str  # the dated snapshot the job tunes (or the tuned model's base)
    method: MethodType


def check_job_request(
    request: JobRequest,
    policy: Policy,
    prices: PriceTable,
    training: FileFacts,
    validation: FileFacts | None = None,
) -> CheckedJob:
    base = _check_model(request.model, policy, prices)
    method = request.method_type
    _check_method(base, method, prices)
    wanted = required_format(base, method, prices)
    _check_file(training, "training_file", wanted)
    if validation is not None:
        _check_file(validation, "validation_file", wanted)
    if request.validation_split is not None:
        _check_split_size(training)
    return CheckedJob(request=request, base_model=base, method=method)


def required_format(
    base_model: str, method: MethodType, prices: PriceTable
) -> DatasetFormat | None:
    """The dataset format a method needs on a model; None where tunegate does not check it
    (reinforcement datasets are passed through to the upstream's grader)."""
    if method == "dpo":
        return "preference"
    if method == "supervised":
        legacy = prices.price_of(base_model).api == "completions"
        return "completion" if legacy else "chat"
    return None


def _check_model(model: str, policy: Policy, prices: PriceTable) -> str:
    base = resolve_model(model, prices)
    if base not in prices.models:
        raise InvalidRequest(
            f"Model {model} is not available for fine-tuning or does not exist.",
            param="model",
            code="model_not_available",
        )
    # A tuned model being tuned further is checked by its base, as named in its id.
    if not model_allowed(policy, base_model_of(model)):
        raise InvalidRequest(
            f"Model {model} is not allowed by your organization's policy (allowed_models).",
            param="model",
            code="model_not_allowed",
        )
    return base


def _check_method(base: str, method: MethodType, prices: PriceTable) -> None:
    supported = prices.models[base].methods
    if method not in supported:
        raise InvalidRequest(
            f"Model {base} does not support {method} fine-tuning; it supports: "
            f"{', '.join(supported)}.",
            param="method.type",
            code="unsupported_method",
        )


def _check_file(facts: FileFacts, param: str, wanted: DatasetFormat | None) -> None:
    if facts.purpose != FINE_TUNE:
        raise InvalidRequest(
            f"File {facts.id} was not uploaded with purpose 'fine-tune'.", param=param
        )
    if facts.status not in USABLE_FILE_STATUSES:
        raise InvalidRequest(f"File {facts.id} is {facts.status} and cannot be used.", param=param)
    if wanted is not None and facts.format != wanted:
        found = facts.format or "unrecognised"
        raise InvalidRequest(
            f"File {facts.id} is in the {found} format; this job needs the {wanted} format.",
            param=param,
            code=f"invalid_{param}",
        )


def _check_split_size(training: FileFacts) -> None:
    needed = MIN_TRAIN + MIN_VALIDATION
    if training.examples is not None and training.examples < needed:
        raise InvalidRequest(
            f"validation_split needs a training file of at least {needed} examples "
            f"({MIN_TRAIN} to train on, {MIN_VALIDATION} to validate); "
            f"it has {training.examples}.",
            param="validation_split",
        )
