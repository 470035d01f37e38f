"""The create-job body: limits, OpenAI's param names, normalisation, and the fingerprint."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.jobs.request import (
    JobRequest,
    canonical_json,
    fingerprint,
    method_hyperparameters,
    parse_job_request,
    upstream_body,
)
from service.errors import InvalidRequest


def body(**overrides: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "training_file": "file-train", **overrides}


def param_of(data: dict[str, Any]) -> str | None:
    with pytest.raises(InvalidRequest) as raised:
        parse_job_request(data)
    return raised.value.param


def test_minimal_body_becomes_supervised() -> None:
    request = parse_job_request(body())
    assert request.method is not None
    assert request.method.type == "supervised"
    assert request.hyperparameters is None
    assert method_hyperparameters(request) == {}


def test_json_bytes_parse_like_mappings() -> None:
    raw = orjson.dumps(body(seed=7, suffix="support-v2"))
    assert parse_job_request(raw) == parse_job_request(body(seed=7, suffix="support-v2"))


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"n_epochs": 51}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"n_epochs": 2.5}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"n_epochs": True}}, "hyperparameters.n_epochs"),
        ({"hyperparameters": {"batch_size": 257}}, "hyperparameters.batch_size"),
        (
            {"hyperparameters": {"learning_rate_multiplier": 0}},
            "hyperparameters.learning_rate_multiplier",
        ),
        (
            {"hyperparameters": {"learning_rate_multiplier": 10.5}},
            "hyperparameters.learning_rate_multiplier",
        ),
        (
            {"hyperparameters": {"learning_rate_multiplier": "fast"}},
            "hyperparameters.learning_rate_multiplier",
        ),
        (
            {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}},
            "method.dpo.hyperparameters.beta",
        ),
        (
            {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 2.5}}}},
            "method.dpo.hyperparameters.beta",
        ),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"beta": 1}}}},
            "method.supervised.hyperparameters.beta",
        ),
        ({"method": {"type": "magic"}}, "method.type"),
        ({"suffix": "a" * 65}, "suffix"),
        ({"suffix": "has space"}, "suffix"),
        ({"suffix": "colon:breaks:names"}, "suffix"),
        ({"seed": -1}, "seed"),
        ({"seed": 2_147_483_648}, "seed"),
        ({"seed": "42"}, "seed"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"validation_split": 0}, "validation_split"),
        ({"validation_split": 0.5}, "validation_split"),
        ({"validation_split": 0.2, "validation_file": "file-v"}, "validation_split"),
        ({"training_file": None}, "training_file"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_values_name_openai_params(overrides: dict[str, Any], param: str) -> None:
    assert param_of(body(**overrides)) == param


def test_missing_and_unknown_fields_read_like_openai() -> None:
    with pytest.raises(InvalidRequest, match="Missing required parameter: 'training_file'"):
        parse_job_request({"model": "gpt-4o-mini"})
    with pytest.raises(InvalidRequest, match="Unrecognized request argument supplied: n_epochs"):
        parse_job_request(body(n_epochs=3))


def test_limits_are_inclusive_where_openai_says_so() -> None:
    request = parse_job_request(
        body(
            hyperparameters={"n_epochs": 50, "batch_size": 256, "learning_rate_multiplier": 10},
            suffix="a" * 64,
            seed=2_147_483_647,
            metadata={f"k{i}": "v" * 512 for i in range(16)},
        )
    )
    assert method_hyperparameters(request)["n_epochs"] == 50


def test_auto_is_accepted_everywhere() -> None:
    auto = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    dpo = {"type": "dpo", "dpo": {"hyperparameters": {**auto, "beta": "auto"}}}
    assert method_hyperparameters(parse_job_request(body(method=dpo)))["beta"] == "auto"


def test_empty_suffix_is_no_suffix() -> None:
    assert parse_job_request(body(suffix="")).suffix is None


def test_top_level_hyperparameters_fold_into_the_method() -> None:
    request = parse_job_request(body(hyperparameters={"n_epochs": 3}))
    assert request.hyperparameters is None
    assert method_hyperparameters(request) == {"n_epochs": 3}


def test_top_level_and_method_merge_when_they_agree() -> None:
    method = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 3}}}
    request = parse_job_request(
        body(hyperparameters={"n_epochs": 3, "batch_size": 8}, method=method)
    )
    assert request.method_type == "dpo"
    assert method_hyperparameters(request) == {"n_epochs": 3, "batch_size": 8, "beta": 0.2}


def test_contradicting_hyperparameters_are_refused() -> None:
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 4}}}
    with pytest.raises(InvalidRequest, match="contradicts") as raised:
        parse_job_request(body(hyperparameters={"n_epochs": 3}, method=method))
    assert raised.value.param == "hyperparameters.n_epochs"


def test_method_sections_must_match_the_type() -> None:
    method = {"type": "dpo", "supervised": {"hyperparameters": {}}}
    assert param_of(body(method=method)) == "method.supervised"


def test_reinforcement_is_passed_through() -> None:
    grader = {
        "type": "string_check",
        "name": "g",
        "input": "{{sample.output_text}}",
        "reference": "{{item.answer}}",
        "operation": "eq",
    }
    method = {
        "type": "reinforcement",
        "reinforcement": {"grader": grader, "hyperparameters": {"reasoning_effort": "low"}},
    }
    request = parse_job_request(body(model="o4-mini", method=method))
    assert upstream_body(request)["method"] == method
    assert param_of(body(model="o4-mini", method=method, hyperparameters={"n_epochs": 2})) == (
        "hyperparameters"
    )


def test_upstream_body_drops_tunegate_fields() -> None:
    request = parse_job_request(body(validation_split=0.2, metadata={"team": "support"}))
    sent = upstream_body(request, validation_file="file-carved")
    assert "validation_split" not in sent
    assert sent["validation_file"] == "file-carved"
    assert sent["metadata"] == {"team": "support"}
    assert sent["method"] == {"type": "supervised", "supervised": {"hyperparameters": {}}}


def test_fingerprint_ignores_spelling_of_the_same_job() -> None:
    top = body(hyperparameters={"n_epochs": 3, "batch_size": "auto"}, metadata={"a": "1", "b": "2"})
    method = body(
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
        metadata={"b": "2", "a": "1"},
        suffix="",
    )
    assert fingerprint(parse_job_request(top)) == fingerprint(parse_job_request(method))
    assert len(fingerprint(parse_job_request(top))) == 64


def test_fingerprint_changes_with_the_job() -> None:
    base = fingerprint(parse_job_request(body()))
    for change in (
        {"seed": 1},
        {"suffix": "x"},
        {"hyperparameters": {"n_epochs": 2}},
        {"model": "gpt-4.1-mini"},
        {"validation_split": 0.1},
    ):
        assert fingerprint(parse_job_request(body(**change))) != base


def test_canonical_json_is_sorted_and_has_no_nulls() -> None:
    data = orjson.loads(canonical_json(parse_job_request(body(seed=3))))
    assert list(data) == sorted(data)
    assert None not in data.values()


def test_a_parsed_request_round_trips() -> None:
    request = parse_job_request(body(seed=3, suffix="s", metadata={"k": "v"}))
    again = JobRequest.model_validate_json(request.model_dump_json(exclude_none=True))
    assert parse_job_request(again.model_dump(exclude_none=True)) == request


@given(
    st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=5),
    st.integers(min_value=0, max_value=2_147_483_647),
)
def test_fingerprint_is_stable_under_key_order(metadata: dict[str, str], seed: int) -> None:
    forward = parse_job_request(body(metadata=metadata, seed=seed))
    backward = parse_job_request(body(metadata=dict(reversed(metadata.items())), seed=seed))
    assert fingerprint(forward) == fingerprint(backward)
