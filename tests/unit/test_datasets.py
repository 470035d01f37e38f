import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import tiktoken
from pydantic import ValidationError

from service.domain import tokens
from service.domain.datasets.validate import (
    DatasetOptions,
    DatasetReport,
    DatasetValidator,
    validate_file,
    write_validated,
)
from service.domain.pricing import load_price_table

SYSTEM = {"role": "system", "content": "You are a terse assistant."}


def chat(i: int = 0, **top: Any) -> dict[str, Any]:
    return {
        "messages": [
            SYSTEM,
            {"role": "user", "content": f"What is {i} plus {i}?"},
            {"role": "assistant", "content": f"It is {2 * i}."},
        ],
        **top,
    }


def messages(*items: dict[str, Any]) -> dict[str, Any]:
    return {"messages": list(items)}


def jsonl(*examples: Any) -> bytes:
    return b"".join((e if isinstance(e, bytes) else orjson.dumps(e)) + b"\n" for e in examples)


def run(data: bytes, chunk: int | None = None, **options: Any) -> tuple[bytes, DatasetReport]:
    validator = DatasetValidator(DatasetOptions(**options))
    size = chunk or max(1, len(data))
    stored = b"".join(validator.feed(data[i : i + size]) for i in range(0, len(data), size))
    stored += validator.finish()
    return stored, validator.report()


def ten_with(line3: Any) -> bytes:
    """Ten valid examples with `line3` inserted as the third line."""
    examples: list[Any] = [chat(i) for i in range(10)]
    examples.insert(2, line3)
    return jsonl(*examples)


def error_lines(report: DatasetReport) -> set[tuple[int | None, str]]:
    return {(issue.line, issue.kind) for issue in report.errors}


def test_a_valid_chat_dataset() -> None:
    stored, report = run(jsonl(*(chat(i) for i in range(10))))
    assert report.valid, report.errors
    assert (report.format, report.examples, report.lines) == ("chat", 10, 10)
    assert report.errors == [] and report.error_counts == {}
    assert report.sha256 == hashlib.sha256(stored).hexdigest()
    assert report.bytes == len(stored)


USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("line3", "kind"),
    [
        ([1, 2], "data_type"),
        ("just a string", "data_type"),
        ({"messages": []}, "missing_messages_list"),
        ({"conversation": []}, "missing_messages_list"),
        (messages({"content": "hi"}, ASSISTANT), "message_missing_key"),
        (messages({"role": "user"}, ASSISTANT), "message_missing_key"),
        (messages({**USER, "mood": "happy"}, ASSISTANT), "message_unrecognized_key"),
        (messages({"role": "robot", "content": "hi"}, ASSISTANT), "unrecognized_role"),
        (messages({"role": "user", "content": ""}, ASSISTANT), "missing_content"),
        (messages(USER, {"role": "assistant", "content": None}), "missing_content"),
        (messages(USER, {"role": "assistant", "content": 42}), "missing_content"),
        (messages(SYSTEM, USER), "example_missing_assistant_message"),
        (messages(USER, {**ASSISTANT, "weight": 2}), "invalid_weight"),
        (messages(USER, {**ASSISTANT, "weight": True}), "invalid_weight"),
        (messages({**USER, "weight": 1}, ASSISTANT), "invalid_weight"),
        (messages(USER, {**ASSISTANT, "name": 7}), "invalid_name"),
        (messages(USER, {"role": "assistant", "tool_calls": [{"id": "x"}]}), "invalid_tool_calls"),
        (messages({**USER, "tool_calls": [CALL]}, ASSISTANT), "invalid_tool_calls"),
        (
            messages(USER, {"role": "tool", "tool_call_id": "nope", "content": "1"}, ASSISTANT),
            "invalid_tool_call_id",
        ),
        ({**messages(USER, ASSISTANT), "tools": [{"type": "function"}]}, "invalid_tools"),
        (
            {**messages(USER, ASSISTANT), "parallel_tool_calls": "yes"},
            "invalid_parallel_tool_calls",
        ),
        (
            messages({"role": "user", "content": [{"type": "audio"}]}, ASSISTANT),
            "invalid_content_part",
        ),
        (b"{not json", "invalid_json"),
        (b'{"messages": [}', "invalid_json"),
        (b'{"messages": "\xff\xfe"}', "invalid_utf8"),
        (b"", "blank_line"),
        (b"   \t", "blank_line"),
        ({"prompt": "2+2=", "completion": " 4"}, "mixed_formats"),
    ],
)
def test_each_error_kind_is_reported_on_its_line(line3: Any, kind: str) -> None:
    _, report = run(ten_with(line3))
    assert not report.valid
    assert (3, kind) in error_lines(report)
    assert {line for line, _ in error_lines(report)} == {3}
    assert report.error_counts[kind] == 1


def test_tool_calling_examples_are_valid() -> None:
    example = {
        "messages": [
            SYSTEM,
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "21 degrees."}],
                "weight": 1,
            },
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "parallel_tool_calls": False,
    }
    _, report = run(jsonl(*[example] * 10))
    assert report.valid, report.errors


def test_messages_never_quote_values() -> None:
    secret_role = "alice@example.com"
    _, report = run(ten_with(messages({"role": secret_role, "content": "x"}, ASSISTANT)))
    assert secret_role not in report.model_dump_json()


def test_errors_listed_are_capped_but_all_counted() -> None:
    _, report = run(jsonl(*[b"nope"] * 80), max_errors=50)
    assert len(report.errors) == 50
    assert report.error_counts == {"invalid_json": 80}


@pytest.mark.parametrize(
    ("data", "kind"),
    [(b"", "empty_file"), (jsonl(*(chat(i) for i in range(9))), "too_few_examples")],
)
def test_file_level_errors(data: bytes, kind: str) -> None:
    _, report = run(data)
    assert error_lines(report) == {(None, kind)}


def test_formats_are_detected_from_the_first_valid_line() -> None:
    completion = [{"prompt": f"{i} + {i} =", "completion": f" {2 * i}\n"} for i in range(10)]
    _, report = run(jsonl(b"garbage", *completion))
    assert report.format == "completion"
    assert report.tokens is not None and report.tokens.encoding == "cl100k_base"
    assert report.tokens.messages_per_example is None
    preference = {
        "input": {"messages": [{"role": "user", "content": "Say hi"}]},
        "preferred_output": [{"role": "assistant", "content": "Hi!"}],
        "non_preferred_output": [{"role": "assistant", "content": "No."}],
    }
    _, report = run(jsonl(*[preference] * 10))
    assert report.valid and report.format == "preference"
    assert {estimate.method for estimate in report.estimated_costs} == {"dpo"}


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"non_preferred_output": None}, "missing_non_preferred_output"),
        ({"preferred_output": [{"role": "user", "content": "x"}]}, "invalid_preference_output"),
        ({"input": "Say hi"}, "missing_input"),
    ],
)
def test_preference_errors(change: dict[str, Any], kind: str) -> None:
    example = {
        "input": {"messages": [USER]},
        "preferred_output": [ASSISTANT],
        "non_preferred_output": [ASSISTANT],
    }
    examples: list[Any] = [example] * 10
    examples[2] = {**example, **change}
    _, report = run(jsonl(*examples))
    assert error_lines(report) == {(3, kind)}


def test_model_compatibility() -> None:
    data = jsonl(*(chat(i) for i in range(10)))
    assert error_lines(run(data, model="babbage-002")[1]) == {(None, "format_not_supported")}
    assert error_lines(run(data, model="not-a-model")[1]) == {(None, "unknown_model")}
    assert run(data, model="ft:gpt-4o-mini-2024-07-18:acme::x")[1].valid


def warnings_of(report: DatasetReport) -> dict[str, tuple[int, list[int]]]:
    return {w.kind: (w.count, w.lines) for w in report.warnings}


def test_warnings() -> None:
    no_system = messages(USER, ASSISTANT)
    no_user = messages(SYSTEM, ASSISTANT)
    data = jsonl(chat(1), no_system, no_user, chat(1), *(chat(i) for i in range(2, 9)), chat(1))
    _, report = run(data)
    assert report.valid
    found = warnings_of(report)
    assert found["missing_system_message"] == (1, [2])
    assert found["missing_user_message"] == (1, [3])
    assert found["duplicate_examples"] == (2, [4, 12])


def test_over_limit_warning_uses_the_models_limit() -> None:
    table = load_price_table()
    tiny = table.model_copy(
        update={
            "models": {
                name: price.model_copy(update={"max_example_tokens": 60})
                for name, price in table.models.items()
            }
        }
    )
    long = messages(USER, {"role": "assistant", "content": "word " * 100})
    _, report = run(jsonl(*(chat(i) for i in range(9)), long), model="gpt-4o-mini", prices=tiny)
    assert warnings_of(report)["over_token_limit"] == (1, [10])
    assert report.tokens is not None and report.tokens.over_limit == 1
    assert report.tokens.billing_tokens < report.tokens.total


def test_legacy_format_advice() -> None:
    examples = [{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(10)]
    _, report = run(jsonl(*examples))
    found = warnings_of(report)
    assert found["completion_without_leading_whitespace"][0] == 10
    assert "prompt_without_separator" in found and "completion_without_ending" in found
    good = [{"prompt": f"q {i}\n\n###\n\n", "completion": f" a {i} END"} for i in range(10)]
    assert warnings_of(run(jsonl(*good))[1]) == {}


def cookbook_tokens(example: dict[str, Any], encoding: tiktoken.Encoding) -> tuple[int, int]:
    total, assistant = 3, 0
    for message in example["messages"]:
        total += 3 + sum(len(encoding.encode(value)) for value in message.values())
        if message["role"] == "assistant":
            assistant += len(encoding.encode(message["content"]))
    return total, assistant


def test_report_numbers_follow_the_cookbook() -> None:
    examples = [chat(i) for i in range(10)]
    examples[4]["messages"][2]["content"] = "A much longer answer, with several more tokens in it."
    _, report = run(jsonl(*examples), model="gpt-4o-mini")
    encoding = tokens.get_encoding("o200k_base")
    expected = [cookbook_tokens(e, encoding) for e in examples]
    totals = sorted(total for total, _ in expected)
    summary = report.tokens
    assert summary is not None
    assert summary.total == sum(totals) == summary.billing_tokens
    assert (summary.per_example.min, summary.per_example.max) == (totals[0], totals[-1])
    assert summary.per_example.median == (totals[4] + totals[5]) / 2
    assert summary.assistant_per_example.max == max(a for _, a in expected)
    assert summary.messages_per_example is not None and summary.messages_per_example.mean == 3
    assert report.default_epochs == 10  # 10 examples: MIN_TARGET_EXAMPLES // 10
    mini = next(e for e in report.estimated_costs if e.model == "gpt-4o-mini-2024-07-18")
    assert mini.trained_tokens == sum(totals) * 10
    assert mini.cost == pytest.approx(sum(totals) * 10 * 3.0 / 1_000_000)
    assert all(e.model not in ("babbage-002", "o4-mini-2025-04-16") for e in report.estimated_costs)


PII_LINE = messages(
    {"role": "user", "content": "I am bob@example.com, call (415) 555-2671"},
    {"role": "assistant", "content": "Noted."},
)


def test_redact_mode_rewrites_only_lines_with_pii() -> None:
    data = ten_with(PII_LINE)
    stored, report = run(data, pii_mode="redact")
    original, redacted = data.split(b"\n"), stored.split(b"\n")
    assert [i for i, (a, b) in enumerate(zip(original, redacted, strict=True)) if a != b] == [2]
    assert len(redacted) == 12
    assert orjson.loads(redacted[2])["messages"][0]["content"] == "I am [EMAIL], call [PHONE]"
    assert report.valid
    assert report.pii.counts == {"EMAIL": 1, "PHONE": 1}
    assert (report.pii.lines, report.pii.redacted) == ([3], True)
    assert report.sha256 == hashlib.sha256(stored).hexdigest()


def test_block_mode_reports_lines_and_kinds_never_values() -> None:
    stored, report = run(ten_with(PII_LINE), pii_mode="block")
    assert error_lines(report) == {(3, "pii_detected")}
    assert report.errors[0].message == "PII found: EMAIL, PHONE"
    assert "bob@example.com" not in report.model_dump_json()
    assert stored == ten_with(PII_LINE)


KEY_PII_LINE = messages(
    {"role": "user", "content": "look me up"},
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": "{}"},
            }
        ],
    },
) | {
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"bob@example.com": {"type": "string"}},
                },
            },
        }
    ]
}


def test_pii_in_json_keys_is_found_and_redacted() -> None:
    _, blocked = run(ten_with(KEY_PII_LINE), pii_mode="block")
    assert error_lines(blocked) == {(3, "pii_detected")}
    stored, report = run(ten_with(KEY_PII_LINE), pii_mode="redact")
    line = orjson.loads(stored.split(b"\n")[2])
    properties = line["tools"][0]["function"]["parameters"]["properties"]
    assert list(properties) == ["[EMAIL]"]
    assert report.pii.counts == {"EMAIL": 1}


def test_allow_mode_stores_the_input_and_still_reports_pii() -> None:
    data = ten_with(PII_LINE)
    stored, report = run(data, pii_mode="allow")
    assert stored == data and report.valid
    assert report.pii.counts == {"EMAIL": 1, "PHONE": 1} and not report.pii.redacted
    assert run(data, pii_entities=())[1].pii.counts == {}


def test_redact_mode_on_a_line_that_is_not_json() -> None:
    stored, report = run(ten_with(b"mail bob@example.com {"), pii_mode="redact")
    assert stored.split(b"\n")[2] == b"mail [EMAIL] {"
    assert error_lines(report) == {(3, "invalid_json")}


MULTIBYTE = messages({"role": "user", "content": "Größe? 日本語 🎉 and bob@example.com"}, ASSISTANT)


@pytest.mark.parametrize("mode", ["allow", "redact"])
def test_chunk_boundaries_anywhere_give_the_same_result(mode: str) -> None:
    data = ten_with(MULTIBYTE) + b"not json\n" + orjson.dumps(chat(99))  # no final newline
    whole = run(data, pii_mode=mode)
    for chunk in (1, 2, 3, 7, 64):
        assert run(data, chunk=chunk, pii_mode=mode) == whole
    assert whole[1].lines == 13


def test_a_multibyte_character_split_across_chunks() -> None:
    data = ten_with(MULTIBYTE)
    cut = data.index("日".encode()) + 1
    validator = DatasetValidator()
    stored = validator.feed(data[:cut]) + validator.feed(data[cut:]) + validator.finish()
    assert stored == data
    assert validator.report().valid


def test_byte_order_mark_and_crlf_are_tolerated() -> None:
    data = b"\xef\xbb\xbf" + ten_with(chat(2)).replace(b"\n", b"\r\n")
    _, report = run(data)
    assert report.valid, report.errors
    assert warnings_of(report)["utf8_bom"] == (1, [1])


def test_validate_file_and_write_validated(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(ten_with(PII_LINE))
    assert validate_file(path).valid
    out = tmp_path / "stored.jsonl"
    with out.open("wb") as sink:
        report = write_validated([path.read_bytes()], sink, DatasetOptions(pii_mode="redact"))
    assert b"[EMAIL]" in out.read_bytes()
    assert report.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()


def test_unknown_pii_entities_are_refused() -> None:
    with pytest.raises(ValidationError):
        DatasetOptions(pii_entities=("EMAIL", "SHOE_SIZE"))


def test_feed_after_finish_is_refused() -> None:
    validator = DatasetValidator()
    validator.finish()
    with pytest.raises(RuntimeError):
        validator.feed(b"{}")
