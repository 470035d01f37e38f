"""What a dataset validation found, collected line by line, and the report built from it.

Owns errors (the first N listed, all counted per kind), warnings with their first line
numbers, the file's format (decided by the first line whose format is recognisable; a later
line in another format is a `mixed_formats` error), PII counts, duplicates, and the file-level
checks that need the whole file (`empty_file`, `too_few_examples`, model compatibility).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from service.domain.datasets.report import (
    CostEstimate,
    DatasetFormat,
    DatasetReport,
    DatasetWarning,
    Issue,
    PiiSummary,
    TokenSummary,
)
from service.domain.datasets.stats import CommonSuffix, DigestSet, default_epochs, example_digest
from service.domain.pricing import ModelPrice, UnknownModelError

if TYPE_CHECKING:
    from service.domain.datasets.tokens import TokenTally
    from service.domain.datasets.validate import DatasetOptions

_WARNING_TEXT = {
    "utf8_bom": "the file starts with a UTF-8 byte order mark",
    "missing_system_message": "examples without a system message",
    "missing_user_message": "examples without a user message",
    "duplicate_examples": "examples identical to an earlier line",
    "over_token_limit": "examples over the {limit}-token training limit; they will be truncated",
    "completion_without_leading_whitespace": "completions that do not start with whitespace",
    "prompt_without_separator": "prompts share no common ending to separate them from completions",
    "completion_without_ending": "completions share no common ending to mark where they stop",
}


@dataclass(slots=True)
class _Tally:
    count: int = 0
    lines: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Findings:
    options: DatasetOptions
    examples: int = 0
    format: DatasetFormat | None = None
    errors: list[Issue] = field(default_factory=list)
    error_counts: Counter[str] = field(default_factory=Counter)
    warnings: dict[str, _Tally] = field(default_factory=dict)
    pii_counts: Counter[str] = field(default_factory=Counter)
    pii_lines: _Tally = field(default_factory=_Tally)
    digests: DigestSet = field(default_factory=DigestSet)
    prompt_ending: CommonSuffix = field(default_factory=CommonSuffix)
    completion_ending: CommonSuffix = field(default_factory=CommonSuffix)

    def error(self, line: int | None, kind: str, message: str) -> None:
        self.error_counts[kind] += 1
        if len(self.errors) < self.options.max_errors:
            self.errors.append(Issue(line=line, kind=kind, message=message))

    def _note(self, tally: _Tally, line: int) -> None:
        tally.count += 1
        if len(tally.lines) < self.options.max_lines_listed:
            tally.lines.append(line)

    def warn(self, kind: str, line: int) -> None:
        self._note(self.warnings.setdefault(kind, _Tally()), line)

    def accept_format(self, fmt: DatasetFormat, line: int) -> bool:
        if self.format is None:
            self.format = fmt
        elif fmt != self.format:
            message = f"a {fmt} example in a {self.format} dataset"
            self.error(line, "mixed_formats", message)
            return False
        return True

    def pii(self, line: int, counts: Counter[str]) -> None:
        if not counts:
            return
        self.pii_counts.update(counts)
        self._note(self.pii_lines, line)
        if self.options.pii_mode == "block":
            self.error(line, "pii_detected", f"PII found: {', '.join(sorted(counts))}")

    def duplicate(self, data: bytes, line: int) -> None:
        if not self.digests.add(example_digest(data)):
            self.warn("duplicate_examples", line)

    def roles(self, roles: set[str], line: int) -> None:
        if "system" not in roles:
            self.warn("missing_system_message", line)
        if "user" not in roles:
            self.warn("missing_user_message", line)

    def legacy(self, prompt: str, completion: str, line: int) -> None:
        self.prompt_ending.add(prompt)
        self.completion_ending.add(completion)
        if not completion[:1].isspace():
            self.warn("completion_without_leading_whitespace", line)

    def finish_file(self, tally: TokenTally, lines: int) -> None:
        if lines == 0 or (self.examples == 0 and not self.error_counts):
            self.error(None, "empty_file", "the file has no examples")
        elif self.examples < self.options.min_examples:
            message = (
                f"{self.examples} examples; fine-tuning needs at least {self.options.min_examples}"
            )
            self.error(None, "too_few_examples", message)
        if self.format == "completion" and tally.total.n:
            if not self.prompt_ending.value:
                self.warnings["prompt_without_separator"] = _Tally(tally.total.n)
            if not self.completion_ending.value:
                self.warnings["completion_without_ending"] = _Tally(tally.total.n)
        self._check_model(tally)

    def _check_model(self, tally: TokenTally) -> None:
        model = self.options.model
        if model is None or self.format is None:
            return
        try:
            price = tally.prices.price_of(model)
        except UnknownModelError:
            self.error(None, "unknown_model", "the model is not a fine-tunable model")
            return
        if self.format not in _formats_of(price):
            self.error(
                None, "format_not_supported", f"the model does not train on {self.format} data"
            )


def _formats_of(price: ModelPrice) -> set[DatasetFormat]:
    if price.api == "completions":
        return {"completion"}
    formats: set[DatasetFormat] = set()
    if "supervised" in price.methods:
        formats.add("chat")
    if "dpo" in price.methods:
        formats.add("preference")
    return formats


def _warnings(found: Findings, tally: TokenTally) -> list[DatasetWarning]:
    warnings = dict(found.warnings)
    over = tally.total.count_over(tally.limit)
    if over:
        warnings["over_token_limit"] = _Tally(over, tally.over_limit_lines)
    return [
        DatasetWarning(
            kind=kind,
            message=_WARNING_TEXT[kind].format(limit=tally.limit),
            count=item.count,
            lines=item.lines,
        )
        for kind, item in warnings.items()
    ]


def _token_summary(found: Findings, tally: TokenTally) -> TokenSummary | None:
    per_example, assistant = tally.total.distribution(), tally.assistant.distribution()
    if per_example is None or assistant is None or tally.encoding_name is None:
        return None
    return TokenSummary(
        encoding=tally.encoding_name,
        per_example=per_example,
        assistant_per_example=assistant,
        messages_per_example=tally.messages.distribution()
        if found.format != "completion"
        else None,
        total=tally.total.total,
        max_example_tokens=tally.limit,
        over_limit=tally.total.count_over(tally.limit),
        billing_tokens=tally.total.capped_total(tally.limit),
    )


def _costs(found: Findings, tally: TokenTally) -> list[CostEstimate]:
    if not tally.total.n or found.format is None:
        return []
    epochs = default_epochs(tally.total.n)
    method: Literal["supervised", "dpo"] = "dpo" if found.format == "preference" else "supervised"
    estimates = []
    for name, price in tally.prices.models.items():
        if found.format not in _formats_of(price) or price.training_per_1m is None:
            continue
        billing = tally.total.capped_total(price.max_example_tokens)
        trained = billing * epochs
        estimates.append(
            CostEstimate(
                model=name,
                method=method,
                max_example_tokens=price.max_example_tokens,
                billing_tokens=billing,
                epochs=epochs,
                trained_tokens=trained,
                cost=round(trained * price.training_per_1m / 1_000_000, 6),
                currency=tally.prices.currency,
            )
        )
    return estimates


def build_report(
    found: Findings, tally: TokenTally, lines: int, stored: int, sha256: str
) -> DatasetReport:
    options = found.options
    return DatasetReport(
        valid=not found.error_counts,
        format=found.format,
        model=options.model,
        lines=lines,
        examples=found.examples,
        bytes=stored,
        sha256=sha256,
        errors=found.errors,
        error_counts=dict(found.error_counts),
        warnings=_warnings(found, tally),
        tokens=_token_summary(found, tally),
        default_epochs=default_epochs(tally.total.n) if tally.total.n else None,
        estimated_costs=_costs(found, tally),
        pii=PiiSummary(
            mode=options.pii_mode,
            entities=list(options.pii_entities),
            counts=dict(found.pii_counts),
            lines=found.pii_lines.lines,
            lines_total=found.pii_lines.count,
            redacted=options.pii_mode == "redact" and bool(found.pii_counts),
        ),
    )
