"""Properties the unit suites do not state yet (`tests/unit/test_datasets_properties.py` covers any
bytes -> a report whatever the chunking; `tests/unit/test_pii.py` covers never raising, spans in
bounds and redaction reaching a fixed point).

Datasets: every error is numbered with a line the file has; the report's line count is the
file's; redacting keeps a valid dataset valid, with the same examples and nothing detectable
left; `block` refuses exactly the files `allow` finds PII in; the bytes stored are what the
report's sha256 and size describe.
PII: a well-formed email, card or SSN planted anywhere in any text is found and gone after
redaction; the entity filter is honoured by detect and redact; the counts match the placeholders.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.datasets.validate import DatasetOptions, DatasetValidator
from service.domain.pii import detect as pii

_WORDS = st.sampled_from(["hello", "call", "me", "at", "ok", "42", "x", "é", "\u200b", "\t"])
_TEXT = st.one_of(st.text(max_size=40), st.lists(_WORDS, max_size=8).map(" ".join))
_LOCAL = st.from_regex(r"[a-z][a-z0-9._%+-]{0,10}[a-z0-9]", fullmatch=True)
_DOMAIN = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]\.(com|org|net|io|co\.uk)", fullmatch=True)
EMAILS = st.builds(lambda local, domain: f"{local}@{domain}", _LOCAL, _DOMAIN).filter(
    lambda email: ".." not in email and ".@" not in email
)


def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        if pii.luhn_valid(body + check):
            return body + check
    raise AssertionError("a Luhn check digit always exists")


CARDS = st.from_regex(r"4[0-9]{14}", fullmatch=True).map(_luhn_complete)
SSNS = st.builds(
    lambda area, group, serial: f"{area:03d}-{group:02d}-{serial:04d}",
    st.integers(1, 899).filter(lambda area: area != 666),
    st.integers(1, 99),
    st.integers(1, 9999),
)
PLANTED = st.one_of(
    EMAILS.map(lambda value: (pii.EMAIL, value)),
    CARDS.map(lambda value: (pii.CREDIT_CARD, value)),
    SSNS.map(lambda value: (pii.US_SSN, value)),
)


@settings(max_examples=100)
@given(before=_TEXT, planted=PLANTED, after=_TEXT)
def test_planted_pii_is_found_and_redacted(
    before: str, planted: tuple[str, str], after: str
) -> None:
    kind, value = planted
    # ' ; ' keeps the value apart: digits either side would make it a longer number.
    text = f"{before} ; {value} ; {after}"
    start = len(before) + 3
    assert any(
        f.kind == kind and f.start <= start and start + len(value) <= f.end
        for f in pii.detect(text)
    ), (kind, value)
    redacted, counts = pii.redact(text)
    assert value not in redacted
    assert counts[kind] >= 1


_ENTITY_SETS = st.sets(st.sampled_from(pii.ALL_ENTITIES))
_MIXED = st.lists(st.one_of(_TEXT, PLANTED.map(lambda planted: planted[1])), max_size=6).map(
    " ".join
)


@settings(max_examples=100)
@given(text=_MIXED, entities=_ENTITY_SETS)
def test_the_entity_filter_is_honoured(text: str, entities: set[str]) -> None:
    assert {f.kind for f in pii.detect(text, entities)} <= entities
    redacted, counts = pii.redact(text, entities)
    assert set(counts) <= entities
    assert pii.detect(redacted, entities) == []
    for kind in set(pii.ALL_ENTITIES) - entities:
        assert redacted.count(pii.placeholder(kind)) == text.count(pii.placeholder(kind))


@settings(max_examples=100)
@given(text=_MIXED)
def test_counts_are_the_placeholders_added(text: str) -> None:
    redacted, counts = pii.redact(text)
    for kind in pii.ALL_ENTITIES:
        added = redacted.count(pii.placeholder(kind)) - text.count(pii.placeholder(kind))
        assert added == counts[kind], kind


def _message(role: str, text: str) -> dict[str, str]:
    return {"role": role, "content": text}


_EXAMPLE = st.builds(
    lambda system, user, answer: {
        "messages": [
            _message("system", system),
            _message("user", user),
            _message("assistant", answer),
        ]
    },
    _MIXED.map("Be brief. ".__add__),
    _MIXED.map("Question: ".__add__),
    _MIXED.map("Answer: ".__add__),
)
_DATASETS = st.lists(_EXAMPLE, min_size=10, max_size=14).map(
    lambda rows: b"".join(orjson.dumps(row) + b"\n" for row in rows)
)
_BROKEN = st.builds(
    lambda data, at, junk: data[:at] + junk + data[at:],
    _DATASETS,
    st.integers(0, 400),
    st.sampled_from([b"\n", b"{", b"\xff", b"\n\n", b'"', b"]"]),
)


def validate(data: bytes, mode: str) -> tuple[bytes, dict[str, object]]:
    validator = DatasetValidator(DatasetOptions(pii_mode=mode))
    stored = validator.feed(data) + validator.finish()
    return stored, orjson.loads(validator.report().model_dump_json())


def line_count(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


@settings(max_examples=40)
@given(data=st.one_of(_DATASETS, _BROKEN), mode=st.sampled_from(["allow", "redact", "block"]))
def test_errors_are_numbered_with_lines_the_file_has(data: bytes, mode: str) -> None:
    stored, report = validate(data, mode)
    assert report["lines"] == line_count(data)
    errors = report["errors"]
    assert isinstance(errors, list)
    numbered = [error for error in errors if error["line"] is not None]
    assert all(1 <= error["line"] <= line_count(data) for error in numbered)
    # Only whole-file problems (too few examples, empty) go without a line number.
    file_wide = {error["kind"] for error in errors if error["line"] is None}
    assert file_wide <= {"too_few_examples", "empty_file"}, file_wide
    assert report["bytes"] == len(stored)
    assert report["sha256"] == hashlib.sha256(stored).hexdigest()


@settings(max_examples=25)
@given(data=_DATASETS)
def test_redacting_keeps_a_valid_dataset_valid_and_clean(data: bytes) -> None:
    _, allowed = validate(data, "allow")
    assert allowed["valid"], allowed["errors"]
    stored, redacted = validate(data, "redact")
    assert redacted["valid"] and redacted["examples"] == allowed["examples"]
    _, again = validate(stored, "allow")
    assert again["valid"] and again["examples"] == allowed["examples"]
    assert again["pii"]["counts"] == {}
    assert redacted["pii"]["counts"] == allowed["pii"]["counts"]


@settings(max_examples=25)
@given(data=_DATASETS)
def test_block_refuses_exactly_the_files_with_pii(data: bytes) -> None:
    _, allowed = validate(data, "allow")
    stored, blocked = validate(data, "block")
    found = Counter(allowed["pii"]["counts"])
    assert blocked["valid"] == (not found)
    assert stored == data
