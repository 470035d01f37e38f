"""Evals, pure: the bodies, the graders, what a run adds up to and how two runs compare."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.datasets.validate import DatasetOptions
from service.domain.evals import graders, results
from service.domain.evals.items import EvalItemsValidator, rows_of
from service.domain.evals.request import (
    LabelModel,
    ScoreModel,
    StringCheck,
    TextSimilarity,
    grader_models,
    parse_eval,
    parse_run,
)
from service.errors import InvalidRequest

SOURCE = {"type": "custom", "item_schema": {"type": "object"}, "include_sample_schema": True}
CHECK = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}


def _eval(*criteria: dict[str, Any]) -> dict[str, Any]:
    return {"name": "e", "data_source_config": SOURCE, "testing_criteria": list(criteria)}


def test_an_eval_body_in_openais_shape_parses() -> None:
    judge = {
        "type": "label_model",
        "name": "judge",
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "Is {{sample.output_text}} right?"}],
        "labels": ["right", "wrong"],
        "passing_labels": ["right"],
    }
    created = parse_eval(_eval(CHECK, judge))
    assert [c.name for c in created.testing_criteria] == ["exact", "judge"]
    assert grader_models(created) == [("testing_criteria[1].model", "gpt-4o-mini")]


@pytest.mark.parametrize(
    ("criterion", "param", "words"),
    [
        ({"type": "python", "name": "p", "source": "def grade(): 1"}, "type", "no code"),
        ({**CHECK, "operation": "regex"}, "testing_criteria[0].operation", "Invalid"),
        (
            {**CHECK, "type": "text_similarity", "evaluation_metric": "meteor"},
            "testing_criteria[0].evaluation_metric",
            "not supported",
        ),
        ({**CHECK, "surprise": 1}, "testing_criteria[0].surprise", "Unrecognized"),
    ],
)
def test_bad_criteria_are_refused_naming_the_param(
    criterion: dict[str, Any], param: str, words: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_eval(_eval(criterion))
    assert caught.value.param is not None and caught.value.param.endswith(param)
    assert words in caught.value.message


def test_criteria_need_distinct_names() -> None:
    with pytest.raises(InvalidRequest, match="distinct"):
        parse_eval(_eval(CHECK, CHECK))


def test_a_completions_run_body_parses_with_inline_items_or_a_file_id() -> None:
    body: dict[str, Any] = {
        "name": "tuned",
        "data_source": {
            "type": "completions",
            "source": {"type": "file_content", "content": [{"item": {"question": "q"}}]},
            "model": "ft:gpt-4o-mini:org::x",
            "input_messages": {
                "type": "template",
                "template": [{"role": "user", "content": "{{item.question}}"}],
            },
        },
    }
    run = parse_run(body)
    assert run.data_source.type == "completions"
    assert run.data_source.source.type == "file_content"
    body["data_source"]["source"] = {"type": "file_id", "id": "file-abc"}
    assert parse_run(body).data_source.source.model_dump() == {"type": "file_id", "id": "file-abc"}
    body["data_source"]["source"] = {"type": "file_id", "id": ""}
    with pytest.raises(InvalidRequest) as caught:
        parse_run(body)
    assert caught.value.param == "data_source.source.id"


def test_templates_render_item_paths_and_the_sample() -> None:
    item = {"question": "Why?", "meta": {"tags": ["a", "b"]}, "n": 3}
    sample = graders.sample_of("Because.")
    text = "{{ item.question }}|{{item.meta.tags.1}}|{{item.n}}|{{sample.output_text}}|{{item.x}}"
    assert graders.render(text, item, sample) == "Why?|b|3|Because.|"


@pytest.mark.parametrize(
    ("operation", "text", "reference", "passed"),
    [
        ("eq", "Paris", "Paris", True),
        ("eq", "Paris.", "Paris", False),
        ("ne", "Rome", "Paris", True),
        ("like", "It is Paris.", "Paris", True),
        ("like", "It is paris.", "Paris", False),
        ("ilike", "It is paris.", "Paris", True),
    ],
)
def test_string_check(operation: str, text: str, reference: str, passed: bool) -> None:
    grader = StringCheck(type="string_check", name="c", input="", reference="", operation=operation)  # type: ignore[arg-type]
    grade = graders.string_check(grader, text, reference)
    assert grade.passed is passed and grade.score == float(passed)


def test_similarity_metrics_on_known_values() -> None:
    same = "the cat sat on the mat"
    assert graders.bleu(same, same) == pytest.approx(1.0)
    assert graders.rouge_n(same, same, 1) == pytest.approx(1.0)
    assert graders.rouge_l(same, same) == pytest.approx(1.0)
    assert graders.fuzzy_match(same, same) == 1.0
    assert graders.bleu("dogs bark", same) == 0.0
    # 5 of 6 unigrams shared both ways: P = R = 5/6
    assert graders.rouge_n("the cat sat on the rug", same, 1) == pytest.approx(5 / 6)
    # LCS of "a b c d" and "a c d e" is "a c d": P = R = 3/4
    assert graders.rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    assert graders.fuzzy_match("abcd", "abce") == pytest.approx(0.75)
    assert 0 < graders.bleu("the cat sat on the rug", same) < 1
    assert graders.cosine([1.0, 0.0], [1.0, 0.0]) == 1.0
    assert graders.cosine([1.0, 0.0], [0.0, 1.0]) == 0.0
    grader = TextSimilarity(
        type="text_similarity",
        name="s",
        input="",
        reference="",
        evaluation_metric="rouge_l",
        pass_threshold=0.7,
    )
    assert graders.similarity_grade(grader, graders.similarity("rouge_l", "a b c d", "a c d e"))
    assert graders.similarity_grade(grader, 0.75).passed
    assert not graders.similarity_grade(grader, 0.5).passed


def test_model_graders_read_their_replies() -> None:
    message = [{"role": "user", "content": "x"}]
    label = LabelModel.model_validate(
        {
            "type": "label_model",
            "name": "l",
            "model": "m",
            "input": message,
            "labels": ["right", "wrong"],
            "passing_labels": ["right"],
        }
    )
    assert graders.label_grade(label, "Right.").passed
    assert not graders.label_grade(label, "wrong").passed
    assert not graders.label_grade(label, "no idea").passed
    score = ScoreModel.model_validate(
        {"type": "score_model", "name": "s", "model": "m", "input": message, "range": [0, 10]}
    )
    assert graders.score_grade(score, "I give it 7/10").score == 7.0
    assert graders.score_grade(score, "7").passed
    assert not graders.score_grade(score, "3").passed
    assert graders.score_grade(score, "42").score == 10.0
    assert not graders.score_grade(score, "none").passed


def test_counts_and_per_criterion_results() -> None:
    items = [{"a": True, "b": True}, {"a": True, "b": False}, None, {"a": False, "b": False}]
    assert results.result_counts(items) == {"total": 4, "passed": 1, "failed": 2, "errored": 1}
    assert results.per_criterion(["a", "b"], items) == [
        {"testing_criteria": "a", "passed": 2, "failed": 1},
        {"testing_criteria": "b", "passed": 1, "failed": 2},
    ]


def test_a_clear_improvement_has_an_interval_above_zero_and_the_same_every_time() -> None:
    base = [{"a": i % 5 == 0} for i in range(40)]
    tuned = [{"a": i % 5 != 1} for i in range(40)]
    [row] = results.compare(["a"], base, tuned)
    assert row.rates == (0.2, 0.8) and row.difference == pytest.approx(0.6)
    assert 0.3 < row.interval[0] < 0.6 < row.interval[1] < 0.9
    assert [c["item"] for c in row.changed] == [i for i in range(40) if i % 5 > 1]
    assert all(not c["first"] and c["second"] for c in row.changed)
    assert results.compare(["a"], base, tuned) == [row]
    assert results.gate_refusal([row], 0.05, 0.95) is None
    assert "lower bound" in (results.gate_refusal([row], 0.7, 0.95) or "")


def test_no_change_gives_an_interval_around_zero_and_the_gate_refuses() -> None:
    same = [{"a": i % 2 == 0} for i in range(30)]
    [row] = results.compare(["a"], same, same)
    assert row.difference == 0 and row.interval == (0.0, 0.0) and row.changed == []
    assert results.gate_refusal([row], 0.05, 0.95) is not None


def test_errored_items_are_left_out_of_the_pairing() -> None:
    [row] = results.compare(["a"], [{"a": False}, None], [{"a": True}, {"a": True}])
    assert row.items == 1 and row.changed == [{"item": 0, "first": False, "second": True}]


def test_an_evals_file_takes_items_bare_or_wrapped_and_names_a_bad_line() -> None:
    lines = [
        b'{"item": {"question": "a"}}',
        b'{"question": "b"}',
        b'{"item": {"question": "c"}, "sample": {"output_text": "C"}}',
        b'{"item": "not an object"}',
    ]
    validator = EvalItemsValidator(DatasetOptions())
    validator.feed(b"\n".join(lines))
    validator.finish()
    report = validator.report()
    assert [(e.line, e.kind) for e in report.errors] == [(4, "invalid_item")]
    rows = rows_of(b"\n".join(lines[:3]) + b"\n")
    assert [row.item for row in rows] == [{"question": q} for q in "abc"]
    assert [row.sample for row in rows] == [None, None, {"output_text": "C"}]


def test_per_model_usage_adds_up_each_sampled_model() -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    cached = {**usage, "prompt_tokens_details": {"cached_tokens": 4}}
    samples = [
        {"model": "ft:b", "usage": usage},
        {"model": "a", "usage": usage},
        {"model": "ft:b", "usage": cached},
        {"model": None, "usage": None},  # a kept answer: no model was called
        {},  # a sample that failed
    ]

    rows = results.per_model_usage(samples)

    assert rows == [
        {
            "model_name": "a",
            "invocation_count": 1,
            "prompt_tokens": 10,
            "completion_tokens": 2,
            "total_tokens": 12,
            "cached_tokens": 0,
        },
        {
            "model_name": "ft:b",
            "invocation_count": 2,
            "prompt_tokens": 20,
            "completion_tokens": 4,
            "total_tokens": 24,
            "cached_tokens": 4,
        },
    ]
