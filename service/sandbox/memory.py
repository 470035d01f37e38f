"""What a sandbox tuned model learned: the (prompt, answer) pairs of its training file.

A tuned model answers a prompt with the assistant message of the most similar training prompt
(cosine over word counts), so an eval on held-out items from the training distribution shows a
real, deterministic improvement over the base model, and one on unrelated items shows none: a
prompt sharing no word with any training prompt gets the base model's generic answer. A model
trained for fewer than three epochs remembers only the first share of its pairs (`Job.memory`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

Pair = tuple[str, str]
_WORD = re.compile(r"\w+")
MIN_SIMILARITY = 0.2


def _counts(text: str) -> Counter[str]:
    return Counter(word.lower() for word in _WORD.findall(text))


def _cosine(a: Counter[str], b: Counter[str]) -> float:
    dot = sum(count * b[word] for word, count in a.items())
    if not dot:
        return 0.0
    norm = math.sqrt(sum(c * c for c in a.values())) * math.sqrt(sum(c * c for c in b.values()))
    return dot / norm


def recall(memory: Sequence[Pair], prompt: str) -> str | None:
    """The answer of the training prompt most like `prompt` (the first on ties), or None."""
    asked = _counts(prompt)
    best, answer = MIN_SIMILARITY, None
    for known, reply in memory:
        score = _cosine(asked, _counts(known))
        if score > best:
            best, answer = score, reply
    return answer


def pairs_of(examples: Iterable[list[dict[str, object]]]) -> tuple[Pair, ...]:
    """Each chat example's last user text before its last assistant message, with that reply."""
    found: list[Pair] = []
    for messages in examples:
        prompt, answer = "", None
        for message in messages:
            text = message.get("content")
            text = text if isinstance(text, str) else ""
            if message.get("role") == "user":
                prompt = text
            elif message.get("role") == "assistant" and prompt:
                answer = text
        if answer is not None:
            found.append((prompt, answer))
    return tuple(found)
