"""An evals data file: JSONL whose every line is one item, either the item object itself or
OpenAI's wrapped form `{"item": {...}}` (with an optional `{"sample": {...}}` beside it).

Validated as it streams like a fine-tuning dataset (same line handling, PII policy and report),
only the per-line rule differs; `rows_of` reads the stored lines back as a run's rows.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.domain.datasets.validate import DatasetOptions, DatasetValidator
from service.domain.evals.request import MAX_ITEMS, Row

WRAPPER_KEYS = frozenset({"item", "sample"})


def is_wrapped(line: dict[str, Any]) -> bool:
    """`{"item": {...}}` (and maybe `"sample"`) rather than an item of its own."""
    return isinstance(line.get("item"), dict) and set(line) <= WRAPPER_KEYS


class EvalItemsValidator(DatasetValidator):
    def __init__(self, options: DatasetOptions) -> None:
        super().__init__(options.model_copy(update={"min_examples": 1, "model": None}))

    def _check_example(self, example: dict[str, Any], raw: bytes, number: int) -> None:
        if self._found.examples > MAX_ITEMS:
            message = f"an evals file holds at most {MAX_ITEMS} items"
            self._found.error(number, "too_many_items", message)
        elif is_wrapped(example) and not isinstance(example.get("sample", {}), dict):
            self._found.error(number, "invalid_sample", "sample must be a JSON object")
        elif "item" in example and set(example) <= WRAPPER_KEYS and not is_wrapped(example):
            self._found.error(number, "invalid_item", "item must be a JSON object")


def row_of(line: dict[str, Any]) -> Row:
    if is_wrapped(line):
        return Row(item=line["item"], sample=line.get("sample"))
    return Row(item=line)


def rows_of(data: bytes) -> list[Row]:
    """The rows of a stored (already validated) evals file, in line order."""
    body = data.removeprefix(b"\xef\xbb\xbf")
    return [row_of(orjson.loads(line)) for line in body.split(b"\n") if line.strip()]
