"""Step metrics: result files (plain and base64), events, checkpoints, merging, CSV and JSON."""

from __future__ import annotations

import base64
import csv
import io
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.jobs.metrics import (
    COLUMNS,
    StepRow,
    merge_rows,
    metrics_csv,
    metrics_json,
    rows_from_checkpoints,
    rows_from_events,
    rows_from_result_file,
    total_steps,
)
from service.errors import UpstreamError

RESULT = (
    b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
    b"1,2.5,0.41,2.7,0.39\n"
    b"2,2.1,0.5,,\n"
    b"3,1.7,0.58,1.9,0.55\n"
)


def event(step: int, **values: float) -> dict[str, Any]:
    data = {"step": step, "total_steps": 3, **values}
    return {"object": "fine_tuning.job.event", "type": "metrics", "data": data}


def test_plain_result_file() -> None:
    rows = rows_from_result_file(RESULT)
    assert [row.step for row in rows] == [1, 2, 3]
    assert rows[0] == StepRow(1, 2.5, 0.41, 2.7, 0.39)
    assert rows[1].valid_loss is None
    assert rows[1].valid_mean_token_accuracy is None


def test_base64_result_file_reads_the_same() -> None:
    encoded = base64.b64encode(RESULT)
    assert rows_from_result_file(encoded) == rows_from_result_file(RESULT)
    wrapped = b"\n".join(encoded[i : i + 60] for i in range(0, len(encoded), 60)) + b"\n"
    assert rows_from_result_file(wrapped) == rows_from_result_file(RESULT)


def test_sandbox_style_rows_without_validation() -> None:
    content = b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,0.9,0.6,,\n"
    assert rows_from_result_file(content) == [StepRow(1, 0.9, 0.6)]


def test_extra_columns_bom_crlf_and_bad_cells() -> None:
    content = (
        b"\xef\xbb\xbfstep,train_loss,train_accuracy,full_valid_loss,surprise\r\n"
        b"2,nan,0.5,1.25,x\r\n"
        b"1,oops,0.4,,y\r\n"
        b",1.0,0.1,,z\r\n"
    )
    rows = rows_from_result_file(content)
    assert rows == [StepRow(1, None, 0.4), StepRow(2, None, 0.5, full_valid_loss=1.25)]


def test_empty_result_file_has_no_rows() -> None:
    assert rows_from_result_file(b"") == []
    assert rows_from_result_file(b"step,train_loss\n") == []


def test_garbage_result_file_is_an_upstream_error() -> None:
    with pytest.raises(UpstreamError):
        rows_from_result_file(b"<html>oops</html>")
    with pytest.raises(UpstreamError):
        rows_from_result_file(base64.b64encode(b"not,a,metrics,file"))


def test_events_give_rows_and_total_steps() -> None:
    events: list[dict[str, Any]] = [
        event(2, train_loss=1.5, train_mean_token_accuracy=0.6),
        {"type": "message", "message": "Fine-tuning job started", "data": {}},
        event(1, train_loss=2.0, valid_loss=2.2, valid_mean_token_accuracy=0.4),
    ]
    rows = rows_from_events(events)
    assert rows == [
        StepRow(1, train_loss=2.0, valid_loss=2.2, valid_mean_token_accuracy=0.4),
        StepRow(2, train_loss=1.5, train_mean_token_accuracy=0.6),
    ]
    assert total_steps(events) == 3
    assert total_steps([]) is None


def test_checkpoints_bring_full_validation_values() -> None:
    checkpoint = {
        "step_number": 3,
        "metrics": {"step": 3.0, "train_loss": 1.7, "full_valid_loss": 1.8},
    }
    assert rows_from_checkpoints([checkpoint]) == [StepRow(3, train_loss=1.7, full_valid_loss=1.8)]


def test_merge_fills_gaps_and_the_first_source_wins() -> None:
    from_file = [StepRow(1, 2.0), StepRow(3, 1.0)]
    from_events = [StepRow(1, 9.9, 0.5), StepRow(2, 1.5)]
    merged = merge_rows(from_file, from_events)
    assert merged == [StepRow(1, 2.0, 0.5), StepRow(2, 1.5), StepRow(3, 1.0)]


def test_csv_has_a_header_and_empty_cells_for_missing_values() -> None:
    text = metrics_csv(rows_from_result_file(RESULT))
    parsed = list(csv.reader(io.StringIO(text)))
    assert tuple(parsed[0]) == COLUMNS
    assert parsed[2] == ["2", "2.1", "0.5", "", "", "", ""]


def test_csv_reads_back_through_the_parser() -> None:
    rows = rows_from_result_file(RESULT)
    assert rows_from_result_file(metrics_csv(rows).encode()) == rows


def test_json_shape() -> None:
    shape = metrics_json([StepRow(1, 2.0)], total=10)
    assert shape == {
        "object": "list",
        "data": [
            {
                "step": 1,
                "train_loss": 2.0,
                "train_mean_token_accuracy": None,
                "valid_loss": None,
                "valid_mean_token_accuracy": None,
                "full_valid_loss": None,
                "full_valid_mean_token_accuracy": None,
            }
        ],
        "total_steps": 10,
    }
    orjson.dumps(shape)


finite = st.floats(allow_nan=False, allow_infinity=False, width=32) | st.none()


@settings(max_examples=50)
@given(st.lists(st.builds(StepRow, st.integers(0, 10_000), finite, finite, finite, finite)))
def test_merged_rows_are_sorted_unique_and_survive_csv(rows: list[StepRow]) -> None:
    merged = merge_rows(rows)
    steps = [row.step for row in merged]
    assert steps == sorted(set(steps))
    assert rows_from_result_file(metrics_csv(merged).encode()) == merged
