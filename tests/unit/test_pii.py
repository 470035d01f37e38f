import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.pii import detect as pii

CORPUS = Path(__file__).parent.parent / "data" / "pii_corpus.jsonl"
THRESHOLD = 0.95


def load_corpus() -> list[tuple[str, list[pii.Finding]]]:
    rows = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        gold = [pii.Finding(e["kind"], e["start"], e["end"]) for e in row["entities"]]
        rows.append((row["text"], gold))
    return rows


def score(rows: list[tuple[str, list[pii.Finding]]]) -> dict[str, tuple[float, float, int]]:
    """Precision, recall and support per kind (and ALL); a hit is the same kind and span."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for text, gold in rows:
        found, expected = set(pii.detect(text)), set(gold)
        for counter, findings in (
            (tp, found & expected),
            (fp, found - expected),
            (fn, expected - found),
        ):
            counter.update(f.kind for f in findings)
            counter["ALL"] += len(findings)
    figures = {}
    for kind in (*pii.ALL_ENTITIES, "ALL"):
        precision = tp[kind] / (tp[kind] + fp[kind]) if tp[kind] + fp[kind] else 1.0
        recall = tp[kind] / (tp[kind] + fn[kind]) if tp[kind] + fn[kind] else 1.0
        figures[kind] = (precision, recall, tp[kind] + fn[kind])
    return figures


def test_corpus_is_well_formed() -> None:
    rows = load_corpus()
    assert len(rows) >= 200
    kinds = Counter(f.kind for _, gold in rows for f in gold)
    assert set(kinds) == set(pii.ALL_ENTITIES)
    assert sum(1 for _, gold in rows if not gold) >= 100
    for text, gold in rows:
        assert all(0 <= f.start < f.end <= len(text) for f in gold)


def test_precision_and_recall_on_the_labelled_corpus() -> None:
    figures = score(load_corpus())
    print("\nPII detection on tests/data/pii_corpus.jsonl (exact kind and span):")
    for kind, (precision, recall, support) in figures.items():
        print(f"  {kind:<12} precision {precision:.3f}  recall {recall:.3f}  (n={support})")
    for kind, (precision, recall, _) in figures.items():
        assert precision >= THRESHOLD, kind
        assert recall >= THRESHOLD, kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail bob@example.com now", "mail [EMAIL] now"),
        ("card 4111 1111 1111 1111 ok", "card [CREDIT_CARD] ok"),
        ("ssn 123-45-6789", "ssn [US_SSN]"),
        ("ip 10.1.2.3 and 2001:db8::1", "ip [IP_ADDRESS] and [IP_ADDRESS]"),
        ("call (415) 555-2671 today", "call [PHONE] today"),
        ("key AKIAIOSFODNN7EXAMPLE", "key [SECRET]"),
        ("nothing to see here 42", "nothing to see here 42"),
    ],
)
def test_redact_replaces_with_typed_placeholders(text: str, expected: str) -> None:
    assert pii.redact(text)[0] == expected


def test_redact_counts_per_kind() -> None:
    _, counts = pii.redact("a@example.com b@example.com 10.0.0.1")
    assert counts == Counter({pii.EMAIL: 2, pii.IP_ADDRESS: 1})


def test_entities_filter() -> None:
    text = "a@example.com from 10.0.0.1"
    assert [f.kind for f in pii.detect(text, [pii.IP_ADDRESS])] == [pii.IP_ADDRESS]
    assert pii.redact(text, [])[0] == text


def test_luhn_and_ssn_rules() -> None:
    assert pii.luhn_valid("4111111111111111")
    assert not pii.luhn_valid("4111111111111112")
    assert not pii.ssn_valid("000", "12", "3456")
    assert not pii.ssn_valid("666", "12", "3456")
    assert not pii.ssn_valid("912", "12", "3456")
    assert not pii.ssn_valid("123", "00", "3456")
    assert not pii.ssn_valid("123", "45", "0000")
    assert pii.ssn_valid("123", "45", "6789")


def test_overlaps_resolve_by_precedence() -> None:
    findings = pii.detect("contact 2125550100@example.com")
    assert [f.kind for f in findings] == [pii.EMAIL]


def test_findings_hold_no_values() -> None:
    finding = pii.detect("bob@example.com")[0]
    assert set(finding.__slots__) == {"kind", "start", "end"}


_PII_FRAGMENTS = st.sampled_from(
    [
        "bob@example.com",
        "4111 1111 1111 1111",
        "123-45-6789",
        "10.0.0.1",
        "2001:db8::1",
        "(415) 555-2671",
        "sk-abcdefghijklmnopqrstuvwxyz123456",
        "api_key=a8f3k2j9d8s7f6g5h4j3",
        "[EMAIL]",
        "2125550100",
        "-----BEGIN RSA PRIVATE KEY-----",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
        "Bearer ",
        "password=",
        "::ffff:",
        "(",
        "-",
        ".",
        "@",
        ":",
        " ",
        "\n",
    ]
)
_TEXTS = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(_PII_FRAGMENTS, st.text(max_size=6)), max_size=12).map("".join),
)


@settings(max_examples=500, deadline=None)
@given(_TEXTS)
def test_detect_and_redact_never_raise_and_leave_nothing_detectable(text: str) -> None:
    findings = pii.detect(text)
    assert all(0 <= f.start < f.end <= len(text) for f in findings)
    redacted, counts = pii.redact(text)
    assert sum(counts.values()) >= len(findings)
    assert pii.detect(redacted) == []
    assert pii.redact(redacted) == (redacted, Counter())
