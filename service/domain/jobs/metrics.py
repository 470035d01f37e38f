"""A job's step metrics: read from OpenAI's result file and metric events, merged, rendered.

The result file is a CSV (`step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy`,
sometimes with more columns); OpenAI serves it base64-encoded, the sandbox either way, so both
are accepted. Metric events carry the same values under `data` while the job runs, and
checkpoints under `metrics` (with the only `full_valid_*` values before the end). Rows merge
by step, sorted; an empty cell, a missing key or a non-finite number is a missing value (None),
and where both sources know a value the earlier source given to `merge_rows` wins. The JSON and
CSV shapes use one set of column names, the events' (`train_mean_token_accuracy`, ...).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from service.errors import UpstreamError

VALUES = (
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
)
COLUMNS = ("step", *VALUES)
# Result-file headers that name a value differently from the events.
_ALIASES = {
    "train_accuracy": "train_mean_token_accuracy",
    "valid_accuracy": "valid_mean_token_accuracy",
    "full_valid_accuracy": "full_valid_mean_token_accuracy",
}


@dataclass(frozen=True, slots=True)
class StepRow:
    step: int
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


def rows_from_result_file(content: bytes) -> list[StepRow]:
    """Rows of a result file, plain CSV or base64 of it; raises `UpstreamError` if neither."""
    reader = csv.DictReader(io.StringIO(_decode(content)))
    rows = (_row({_column(k): v for k, v in record.items() if k}) for record in reader)
    return merge_rows([row for row in rows if row is not None])


def rows_from_events(events: Iterable[Mapping[str, Any]]) -> list[StepRow]:
    """Rows of the `metrics` events among a job's events (any order, any page size)."""
    rows = (_row(event.get("data") or {}) for event in events if event.get("type") == "metrics")
    return merge_rows([row for row in rows if row is not None])


def rows_from_checkpoints(checkpoints: Iterable[Mapping[str, Any]]) -> list[StepRow]:
    """Rows of a job's checkpoints: the only source of `full_valid_*` before the result file."""
    rows = (
        _row({**(checkpoint.get("metrics") or {}), "step": checkpoint.get("step_number")})
        for checkpoint in checkpoints
    )
    return merge_rows([row for row in rows if row is not None])


def total_steps(events: Iterable[Mapping[str, Any]]) -> int | None:
    """The job's total step count, as the latest metric event reported it."""
    totals = [_int((event.get("data") or {}).get("total_steps")) for event in events]
    known = [total for total in totals if total is not None]
    return max(known) if known else None


def merge_rows(*sources: Iterable[StepRow]) -> list[StepRow]:
    """One row per step, sorted; the first source to know a value wins."""
    merged: dict[int, StepRow] = {}
    for source in sources:
        for row in source:
            known = merged.get(row.step)
            merged[row.step] = row if known is None else _fill(known, row)
    return [merged[step] for step in sorted(merged)]


def metrics_json(rows: Iterable[StepRow], total: int | None = None) -> dict[str, Any]:
    return {"object": "list", "data": [asdict(row) for row in rows], "total_steps": total}


def metrics_csv(rows: Iterable[StepRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if value is None else value for value in _values(row)])
    return out.getvalue()


def _values(row: StepRow) -> list[int | float | None]:
    return [getattr(row, field.name) for field in fields(row)]


def _fill(known: StepRow, other: StepRow) -> StepRow:
    missing = {name: getattr(other, name) for name in VALUES if getattr(known, name) is None}
    return replace(known, **missing)


def _row(data: Mapping[str, Any]) -> StepRow | None:
    step = _int(data.get("step"))
    if step is None:
        return None
    return StepRow(step, **{name: _float(data.get(name)) for name in VALUES})


def _column(header: str) -> str:
    name = header.strip()
    return _ALIASES.get(name, name)


def _int(value: object) -> int | None:
    number = _float(value)
    return int(number) if number is not None and number == int(number) else None


def _float(value: object) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _decode(content: bytes) -> str:
    text = _clean(content)
    if not text or _is_csv(text):
        return text.decode("utf-8", errors="replace")
    try:
        decoded = _clean(base64.b64decode(b"".join(text.split()), validate=True))
    except binascii.Error:
        decoded = b""
    if not _is_csv(decoded):
        raise UpstreamError("The job's result file is neither a metrics CSV nor base64 of one.")
    return decoded.decode("utf-8", errors="replace")


def _clean(content: bytes) -> bytes:
    return content.strip().removeprefix(b"\xef\xbb\xbf")


def _is_csv(text: bytes) -> bool:
    return text[:4].lower() == b"step"
