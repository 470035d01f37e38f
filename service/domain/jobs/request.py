"""The body of `POST /v1/fine_tuning/jobs`: its shape, its normal form, and its fingerprint.

Owns OpenAI's request fields with their documented limits, plus tunegate's `validation_split` and
`eval_id`.
`parse_job_request` turns a body into a `JobRequest` or raises `InvalidRequest` naming the
`param` as OpenAI would (`hyperparameters.n_epochs`, `method.dpo.hyperparameters.beta`, ...).
The top-level `hyperparameters` (deprecated by OpenAI) are folded into `method`, so every parsed
request carries a `method` and nothing else does. `fingerprint` hashes the normal form: two
bodies asking for the same job hash the same, which is what `Idempotency-Key` compares.
Checks that need the org's policy, the price table or the files live in `jobs.checks`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import PydanticCustomError

from service.domain.validation import invalid_request
from service.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)

MethodType = Literal["supervised", "dpo", "reinforcement"]
Auto = Literal["auto"]
MAX_SEED = 2_147_483_647
MAX_SUFFIX = 64
SUFFIX_PATTERN = re.compile(r"[A-Za-z0-9_-]*")
METADATA_PAIRS, METADATA_KEY, METADATA_VALUE = 16, 64, 512


def _auto_or(
    kind: type[int] | type[float], low: float, high: float, *, open_low: bool = False
) -> PlainValidator:
    """`"auto"` or a number in range, with one clear message instead of a union's two."""
    accepted = int if kind is int else int | float
    above = f"above {low:g}" if open_low else f"from {low:g}"
    noun = "an integer" if kind is int else "a number"
    message = f'must be "auto" or {noun} {above} to {high:g}'

    def check(value: object) -> object:
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise PydanticCustomError("auto_or_number", message)
        if not (low < value if open_low else low <= value) or value > high:
            raise PydanticCustomError("auto_or_number", message)
        return kind(value)

    bound = Field(gt=low, le=high) if open_low else Field(ge=low, le=high)
    return PlainValidator(check, json_schema_input_type=Auto | Annotated[kind, bound])


Epochs = Annotated[Auto | int, _auto_or(int, 1, 50)]
BatchSize = Annotated[Auto | int, _auto_or(int, 1, 256)]
LearningRate = Annotated[Auto | float, _auto_or(float, 0, 10, open_low=True)]
Beta = Annotated[Auto | float, _auto_or(float, 0, 2, open_low=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hyperparameters(_Strict):
    n_epochs: Epochs | None = None
    batch_size: BatchSize | None = None
    learning_rate_multiplier: LearningRate | None = None


class DpoHyperparameters(Hyperparameters):
    beta: Beta | None = None


class SupervisedMethod(_Strict):
    hyperparameters: Hyperparameters | None = None


class DpoMethod(_Strict):
    hyperparameters: DpoHyperparameters | None = None


class Method(_Strict):
    type: MethodType
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: dict[str, Any] | None = None  # grader and all: passed through as sent


def _check_suffix(value: object) -> object:
    if not isinstance(value, str):
        raise PydanticCustomError("suffix", "must be a string")
    if len(value) > MAX_SUFFIX or not SUFFIX_PATTERN.fullmatch(value):
        raise PydanticCustomError("suffix", "must be up to 64 letters, digits, '-' or '_'")
    return value or None  # an empty suffix is no suffix


def _check_metadata(value: object) -> object:
    rule = (
        f"metadata maps at most {METADATA_PAIRS} keys (up to {METADATA_KEY} characters) "
        f"to strings (up to {METADATA_VALUE} characters)"
    )
    if not isinstance(value, dict) or len(value) > METADATA_PAIRS:
        raise PydanticCustomError("metadata", rule)
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > METADATA_KEY or len(item) > METADATA_VALUE:
            raise PydanticCustomError("metadata", rule)
    return value


Suffix = Annotated[
    str,
    PlainValidator(
        _check_suffix,
        json_schema_input_type=Annotated[
            str, Field(max_length=MAX_SUFFIX, pattern=r"^[A-Za-z0-9_-]*$")
        ],
    ),
]
Metadata = Annotated[
    dict[str, str],
    PlainValidator(
        _check_metadata,
        json_schema_input_type=dict[str, Annotated[str, Field(max_length=METADATA_VALUE)]],
    ),
]


class JobRequest(_Strict):
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: Suffix | None = None
    seed: Annotated[int, Field(strict=True, ge=0, le=MAX_SEED)] | None = None
    metadata: Metadata | None = None
    integrations: list[dict[str, Any]] | None = None
    # tunegate's own: carve a validation file out of the training file (see `splits`).
    validation_split: Annotated[float, Field(gt=0, lt=0.5)] | None = None
    # and evaluate the tuned model (and the base model) with this eval once it succeeds.
    eval_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None

    @property
    def method_type(self) -> MethodType:
        return self.method.type if self.method else "supervised"


def parse_job_request(body: bytes | Mapping[str, Any]) -> JobRequest:
    """Validate and normalise a create body; raises `InvalidRequest` with OpenAI's `param`."""
    try:
        request = validate_body(JobRequest, body)
    except ValidationError as error:
        raise _invalid(error) from None
    return normalise(request)


def validate_body(model: type[M], body: bytes | Mapping[str, Any]) -> M:
    """`model` from raw JSON bytes or an already-parsed body; pydantic's errors as they are."""
    if isinstance(body, bytes | bytearray):
        return model.model_validate_json(body)
    return model.model_validate(body)


def normalise(request: JobRequest) -> JobRequest:
    """Fold top-level hyperparameters into `method`; refuse contradictions."""
    if request.validation_split is not None and request.validation_file is not None:
        raise InvalidRequest(
            "validation_split and validation_file are mutually exclusive: send one.",
            param="validation_split",
        )
    method = request.method or Method(type="supervised")
    _check_sections(method)
    merged = _merge(method, request.hyperparameters)
    return request.model_copy(update={"method": merged, "hyperparameters": None})


def method_hyperparameters(request: JobRequest) -> dict[str, Any]:
    """The hyperparameters a normalised request sets (values or "auto"), by name."""
    method = request.method or Method(type="supervised")
    if method.type == "reinforcement":
        return dict((method.reinforcement or {}).get("hyperparameters") or {})
    section = method.supervised if method.type == "supervised" else method.dpo
    values = section.hyperparameters if section and section.hyperparameters else None
    return values.model_dump(exclude_none=True) if values else {}


def canonical_json(request: JobRequest) -> bytes:
    """The normal form as bytes: sorted keys, no nulls, no "auto" (it is the default)."""
    normal = normalise(request)
    data = normal.model_dump(mode="json", exclude_none=True)
    kind = normal.method_type
    if kind != "reinforcement":
        params = {k: v for k, v in method_hyperparameters(normal).items() if v != "auto"}
        data["method"] = {"type": kind, kind: {"hyperparameters": params}}
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def fingerprint(request: JobRequest) -> str:
    """Same job asked for, same fingerprint: what an `Idempotency-Key` is compared against."""
    return hashlib.sha256(canonical_json(request)).hexdigest()


def upstream_body(request: JobRequest, *, validation_file: str | None = None) -> dict[str, Any]:
    """What to send upstream: the normal form without tunegate's own fields. A validation
    file carved out by `validation_split` is passed as `validation_file`."""
    body = normalise(request).model_dump(mode="json", exclude_none=True)
    body.pop("validation_split", None)
    body.pop("eval_id", None)
    if validation_file is not None:
        body["validation_file"] = validation_file
    return body


def _check_sections(method: Method) -> None:
    for name in ("supervised", "dpo", "reinforcement"):
        if name != method.type and getattr(method, name) is not None:
            raise InvalidRequest(
                f"method.{name} was given but method.type is {method.type!r}.",
                param=f"method.{name}",
            )


def _merge(method: Method, top: Hyperparameters | None) -> Method:
    kind = method.type
    given = top.model_dump(exclude_none=True) if top else {}
    if kind == "reinforcement":
        if given:
            raise InvalidRequest(
                "Top-level hyperparameters do not apply to reinforcement fine-tuning: "
                "send them in method.reinforcement.hyperparameters.",
                param="hyperparameters",
            )
        return method
    section = method.supervised if kind == "supervised" else method.dpo
    current = section.hyperparameters if section and section.hyperparameters else None
    values = current.model_dump(exclude_none=True) if current else {}
    for name, value in given.items():
        if name in values and values[name] != value:
            raise InvalidRequest(
                f"hyperparameters.{name} ({value!r}) contradicts "
                f"method.{kind}.hyperparameters.{name} ({values[name]!r}).",
                param=f"hyperparameters.{name}",
            )
        values[name] = value
    return Method.model_validate({"type": kind, kind: {"hyperparameters": values}})


def _invalid(error: ValidationError) -> InvalidRequest:
    first = error.errors()[0]
    return invalid_request(first, ".".join(str(part) for part in first["loc"]) or None)
