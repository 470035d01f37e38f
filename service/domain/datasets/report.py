"""The dataset validation report: the JSON shape the upload route, `GET /v1/files/{id}/report`
and `tunegate validate` all return.

Owns the pydantic models only. Issues carry a 1-based line number, a kind and a message that
never quotes the line's values; PII appears as counts per kind and line numbers, never text.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

DatasetFormat = Literal["chat", "completion", "preference"]
PiiMode = Literal["allow", "redact", "block"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Issue(_Model):
    line: int | None  # None for findings about the whole file (too few examples, ...)
    kind: str
    message: str


class DatasetWarning(_Model):
    kind: str
    message: str
    count: int
    lines: list[int] = []  # the first few, for a person to look at


class Distribution(_Model):
    min: int
    max: int
    mean: float
    median: float
    p10: float
    p90: float


class TokenSummary(_Model):
    encoding: str
    per_example: Distribution
    assistant_per_example: Distribution
    messages_per_example: Distribution | None  # None for the prompt/completion format
    total: int
    max_example_tokens: int  # the training limit examples were checked against
    over_limit: int
    billing_tokens: int  # per-example tokens capped at the limit, summed (one epoch)


class CostEstimate(_Model):
    model: str
    method: Literal["supervised", "dpo"]
    max_example_tokens: int
    billing_tokens: int
    epochs: int
    trained_tokens: int
    cost: float
    currency: str


class PiiSummary(_Model):
    mode: PiiMode
    entities: list[str]
    counts: dict[str, int]
    lines: list[int]  # the first lines with findings
    lines_total: int
    redacted: bool


class DatasetReport(_Model):
    valid: bool
    format: DatasetFormat | None
    model: str | None
    lines: int
    examples: int
    bytes: int
    sha256: str
    errors: list[Issue]
    error_counts: dict[str, int]
    warnings: list[DatasetWarning]
    tokens: TokenSummary | None
    default_epochs: int | None
    estimated_costs: list[CostEstimate]
    pii: PiiSummary
