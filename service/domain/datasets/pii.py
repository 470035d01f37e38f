"""PII in dataset lines: finding it cheaply per line, and redacting it inside the JSON.

Owns the scanning strategy. A line's strings, object keys included (a key can carry content:
a tool parameter's name, a metadata label), are joined and handed to the detector in one call,
since the per-call cost dominates for short strings; long strings already found clean (system
prompts, tool definitions, repeated on most lines) are remembered in a bounded set and skipped.
Redaction rewrites strings inside the parsed example, never the raw JSON text, where a
placeholder could break an escape sequence; a key that holds personal data is renamed to its
redacted form. Lines that are not JSON at all are redacted as plain text.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from service.domain.pii import detect as pii

_REMEMBER_FROM_CHARS = 64  # shorter strings are cheaper to rescan than to look up
_REMEMBER_MAX_CHARS = 1_000_000


def collect_strings(value: Any) -> list[str]:
    """Every string inside a parsed JSON value, object keys included.

    Iterative: JSON nests up to 1024 levels deep, past Python's recursion limit.
    """
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(item)
            stack.extend(reversed(item.values()))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


class PiiScanner:
    def __init__(self, entities: tuple[str, ...]) -> None:
        self.entities = entities
        self._clean: set[str] = set()
        self._clean_chars = 0

    def _remember_clean(self, texts: list[str]) -> None:
        for text in texts:
            if len(text) < _REMEMBER_FROM_CHARS:
                continue
            if self._clean_chars + len(text) > _REMEMBER_MAX_CHARS:
                self._clean.clear()
                self._clean_chars = 0
            self._clean.add(text)
            self._clean_chars += len(text)

    def count(self, example: Any) -> Counter[str]:
        """Findings per kind among the example's string values."""
        texts = [text for text in collect_strings(example) if text not in self._clean]
        if not texts:
            return Counter()
        # A newline keeps adjacent strings from reading as one number or address.
        counts = Counter(f.kind for f in pii.detect("\n".join(texts), self.entities))
        if not counts:
            self._remember_clean(texts)
        return counts

    def _redact_text(self, text: str, counts: Counter[str]) -> str:
        if text in self._clean:
            return text
        redacted, found = pii.redact(text, self.entities)
        counts.update(found)
        return redacted

    def redact(self, value: Any, counts: Counter[str]) -> Any:
        """A copy of a parsed JSON value with every string redacted, keys included."""
        if isinstance(value, str):
            return self._redact_text(value, counts)
        if not isinstance(value, list | dict):
            return value
        copy: Any = [None] * len(value) if isinstance(value, list) else {}
        pending = [(value, copy)]
        while pending:  # iterative, for the same reason as collect_strings
            source, target = pending.pop()
            for key, item in source.items() if isinstance(source, dict) else enumerate(source):
                if isinstance(key, str):
                    key = self._redact_text(key, counts)
                if isinstance(item, str):
                    target[key] = self._redact_text(item, counts)
                elif isinstance(item, list | dict):
                    target[key] = [None] * len(item) if isinstance(item, list) else {}
                    pending.append((item, target[key]))
                else:
                    target[key] = item
        return copy

    def count_text(self, text: str) -> Counter[str]:
        return Counter(finding.kind for finding in pii.detect(text, self.entities))
