"""The graders: templates over an item and its sample, and the score each grader gives.

A template names `{{item.<field>}}` (dotted paths into the item) and `{{sample.output_text}}`;
a name that is absent renders as the empty string. `string_check` and `text_similarity` are
computed here (fuzzy match, BLEU with add-one smoothing, ROUGE-N and ROUGE-L F1); `cosine` gets
its two vectors from the embeddings the operations fetch. Model graders (`label_model`,
`score_model`) are rendered into chat messages here and their replies read back here.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from service.domain.evals.request import (
    LabelModel,
    Message,
    ScoreModel,
    StringCheck,
    TextSimilarity,
)

_FIELD = re.compile(r"\{\{\s*(item|sample)\.([\w.]+)\s*\}\}")
_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Grade:
    name: str
    score: float
    passed: bool
    sample: str | None = None  # a model grader's reply, kept for the output item


def _lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def render(template: str, item: Mapping[str, Any], sample: Mapping[str, Any]) -> str:
    scopes = {"item": item, "sample": sample}

    def value(match: re.Match[str]) -> str:
        found = _lookup(scopes[match.group(1)], match.group(2))
        return "" if found is None else found if isinstance(found, str) else str(found)

    return _FIELD.sub(value, template)


def render_messages(
    messages: Sequence[Message], item: Mapping[str, Any], sample: Mapping[str, Any]
) -> list[dict[str, str]]:
    return [{"role": m.role, "content": render(m.content, item, sample)} for m in messages]


def string_check(grader: StringCheck, text: str, reference: str) -> Grade:
    checks = {
        "eq": text == reference,
        "ne": text != reference,
        "like": reference in text,
        "ilike": reference.lower() in text.lower(),
    }
    passed = checks[grader.operation]
    return Grade(grader.name, 1.0 if passed else 0.0, passed)


def _words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


def _ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def _f1(overlap: int, made: int, wanted: int) -> float:
    if not overlap:
        return 0.0
    precision, recall = overlap / made, overlap / wanted
    return 2 * precision * recall / (precision + recall)


def rouge_n(text: str, reference: str, n: int) -> float:
    made, wanted = _ngrams(_words(text), n), _ngrams(_words(reference), n)
    overlap = sum((made & wanted).values())
    return _f1(overlap, sum(made.values()), sum(wanted.values()))


def rouge_l(text: str, reference: str) -> float:
    a, b = _words(text), _words(reference)
    row = [0] * (len(b) + 1)
    for x in a:  # longest common subsequence, one row at a time
        diagonal = 0
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], diagonal + 1 if x == y else max(row[j], row[j - 1])
    return _f1(row[-1], len(a), len(b))


def bleu(text: str, reference: str, max_n: int = 4) -> float:
    """Sentence BLEU against one reference, add-one smoothing above unigrams."""
    made, wanted = _words(text), _words(reference)
    if not made or not wanted:
        return 0.0
    logs = 0.0
    for n in range(1, max_n + 1):
        grams, ref = _ngrams(made, n), _ngrams(wanted, n)
        total = max(sum(grams.values()), 0)
        hits = sum((grams & ref).values())
        if n == 1 and not hits:
            return 0.0
        smooth = 0 if n == 1 else 1
        logs += math.log((hits + smooth) / (total + smooth)) if total + smooth else 0.0
    brevity = min(0.0, 1 - len(wanted) / len(made))
    return math.exp(brevity + logs / max_n)


def fuzzy_match(text: str, reference: str) -> float:
    return difflib.SequenceMatcher(None, text, reference, autojunk=False).ratio()


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def similarity(metric: str, text: str, reference: str) -> float:
    if metric == "fuzzy_match":
        return fuzzy_match(text, reference)
    if metric == "bleu":
        return bleu(text, reference)
    if metric == "rouge_l":
        return rouge_l(text, reference)
    return rouge_n(text, reference, int(metric.removeprefix("rouge_")))


def similarity_grade(grader: TextSimilarity, score: float) -> Grade:
    return Grade(grader.name, round(score, 6), score >= grader.pass_threshold)


def label_grade(grader: LabelModel, reply: str) -> Grade:
    """The label the grader model answered (its whole reply, or the first label it names)."""
    said = reply.strip().strip(".").lower()
    labels = {label.lower(): label for label in grader.labels}
    label = labels.get(said) or next((labels[k] for k in labels if k in said), None)
    passed = label is not None and label in grader.passing_labels
    return Grade(grader.name, 1.0 if passed else 0.0, passed, reply)


def score_grade(grader: ScoreModel, reply: str) -> Grade:
    """The first number in the grader model's reply, clamped to its range."""
    low, high = grader.range
    found = _NUMBER.search(reply)
    score = min(max(float(found.group()), low), high) if found else low
    threshold = grader.pass_threshold if grader.pass_threshold is not None else (low + high) / 2
    return Grade(grader.name, score, found is not None and score >= threshold, reply)


def sample_of(output_text: str) -> dict[str, Any]:
    """What a template's `sample.` names resolve against."""
    return {"output_text": output_text, "choices": [{"message": {"content": output_text}}]}
