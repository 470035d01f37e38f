"""The bodies of `POST /v1/evals`, `POST /v1/evals/{id}` and `POST /v1/evals/{id}/runs`.

OpenAI's shapes: a `custom` data source config with an item schema, testing criteria of type
`string_check`, `text_similarity`, `label_model` and `score_model`. `python` graders are refused
(the gateway runs no caller's code), as are the similarity metrics it does not compute (`gleu`,
`meteor`). A run reads its items inline (`file_content`) or from a tunegate file of purpose `evals`
(`file_id`) and either grades them as they are (`jsonl`) or first samples a model with an
input template (`completions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.domain.validation import invalid_request
from service.errors import InvalidRequest

Metadata = Annotated[dict[str, Annotated[str, Field(max_length=512)]], Field(max_length=16)]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Similarity = Literal["fuzzy_match", "bleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5"]
Metric = Similarity | Literal["rouge_l", "cosine"]
UNSUPPORTED = {
    "python": "python graders are not accepted: tunegate runs no code sent by callers; "
    "use string_check, text_similarity, label_model or score_model",
    "multi": "multi graders are not supported; list each grader as its own testing criterion",
}
MAX_CRITERIA = 20
MAX_ITEMS = 1000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str
    type: Literal["message"] | None = None


class StringCheck(_Strict):
    type: Literal["string_check"]
    name: Name
    input: str
    reference: str
    operation: Literal["eq", "ne", "like", "ilike"]


class TextSimilarity(_Strict):
    type: Literal["text_similarity"]
    name: Name
    input: str
    reference: str
    evaluation_metric: Metric
    pass_threshold: Annotated[float, Field(ge=0, le=1)]


class LabelModel(_Strict):
    type: Literal["label_model"]
    name: Name
    model: str
    input: Annotated[list[Message], Field(min_length=1)]
    labels: Annotated[list[str], Field(min_length=1)]
    passing_labels: Annotated[list[str], Field(min_length=1)]


class ScoreModel(_Strict):
    type: Literal["score_model"]
    name: Name
    model: str
    input: Annotated[list[Message], Field(min_length=1)]
    range: tuple[float, float] = (0.0, 1.0)
    pass_threshold: float | None = None
    sampling_params: dict[str, Any] | None = None


Criterion = Annotated[
    StringCheck | TextSimilarity | LabelModel | ScoreModel, Field(discriminator="type")
]
GRADER_MODELS = (LabelModel, ScoreModel)


class CustomSource(_Strict):
    type: Literal["custom"]
    item_schema: dict[str, Any]
    include_sample_schema: bool = False


class EvalCreate(_Strict):
    name: Name | None = None
    metadata: Metadata | None = None
    data_source_config: CustomSource
    testing_criteria: Annotated[list[Criterion], Field(min_length=1, max_length=MAX_CRITERIA)]


class EvalUpdate(_Strict):
    name: Name | None = None
    metadata: Metadata | None = None


class FileId(_Strict):
    """A tunegate file of purpose `evals` (see `evals.items`)."""

    type: Literal["file_id"]
    id: Annotated[str, Field(min_length=1)]


class Template(_Strict):
    type: Literal["template"]
    template: Annotated[list[Message], Field(min_length=1)]


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    temperature: float | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    top_p: float | None = None
    seed: int | None = None


class Row(_Strict):
    item: dict[str, Any]
    sample: dict[str, Any] | None = None


class FileContent(_Strict):
    type: Literal["file_content"]
    content: Annotated[list[Row], Field(min_length=1, max_length=MAX_ITEMS)]


Source = Annotated[FileId | FileContent, Field(discriminator="type")]


class JsonlSource(_Strict):
    type: Literal["jsonl"]
    source: Source


class CompletionsSource(_Strict):
    type: Literal["completions"]
    source: Source
    model: Annotated[str, Field(min_length=1)]
    input_messages: Template
    sampling_params: Sampling | None = None


class RunCreate(_Strict):
    name: Name | None = None
    metadata: Metadata | None = None
    data_source: Annotated[JsonlSource | CompletionsSource, Field(discriminator="type")]


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    criteria = body.get("testing_criteria")
    for index, criterion in enumerate(criteria if isinstance(criteria, list) else []):
        kind = criterion.get("type") if isinstance(criterion, dict) else None
        if kind in UNSUPPORTED:
            raise InvalidRequest(UNSUPPORTED[kind], param=f"testing_criteria[{index}].type")
        metric = criterion.get("evaluation_metric") if isinstance(criterion, dict) else None
        if kind == "text_similarity" and metric in ("gleu", "meteor"):
            message = f"evaluation_metric '{metric}' is not supported by tunegate"
            raise InvalidRequest(message, param=f"testing_criteria[{index}].evaluation_metric")


def _param(location: tuple[int | str, ...]) -> str | None:
    parts = [str(p) for p in location if p not in GRADER_NAMES]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or None


GRADER_NAMES = frozenset(
    {"string_check", "text_similarity", "label_model", "score_model", "jsonl", "completions"}
    | {"file_id", "file_content"}
)


def _parse(model: type[Any], body: Mapping[str, Any]) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        failure = error.errors()[0]
        raise invalid_request(failure, _param(failure["loc"])) from None


Body = bytes | Mapping[str, Any]


def _object(body: Body) -> Mapping[str, Any]:
    if not isinstance(body, bytes | bytearray):
        return body
    try:
        parsed = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return parsed


def parse_eval(raw: Body) -> EvalCreate:
    body = _object(raw)
    _refuse_unsupported(body)
    created: EvalCreate = _parse(EvalCreate, body)
    names = [criterion.name for criterion in created.testing_criteria]
    if len(set(names)) != len(names):
        raise InvalidRequest("testing criteria need distinct names", param="testing_criteria")
    return created


def parse_eval_update(body: Body) -> EvalUpdate:
    updated: EvalUpdate = _parse(EvalUpdate, _object(body))
    return updated


def parse_run(body: Body) -> RunCreate:
    run: RunCreate = _parse(RunCreate, _object(body))
    return run


def response_schema(source: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's `schema` of a custom data source: the item schema under `item`, and the
    sample's under `sample` when the config asked for it."""
    properties: dict[str, Any] = {"item": source.get("item_schema", {})}
    required = ["item"]
    if source.get("include_sample_schema"):
        properties["sample"] = SAMPLE_SCHEMA
        required.append("sample")
    return {"type": "object", "properties": properties, "required": required}


SAMPLE_SCHEMA = {
    "type": "object",
    "properties": {"output_text": {"type": "string"}, "model": {"type": "string"}},
    "required": ["output_text"],
}


def grader_models(created: EvalCreate) -> list[tuple[str, str]]:
    """(param, model) of each model grader: the org's policy must route every one."""
    return [
        (f"testing_criteria[{index}].model", c.model)
        for index, c in enumerate(created.testing_criteria)
        if isinstance(c, GRADER_MODELS)
    ]
