"""Recognising secrets: API keys, access tokens, JWTs, private keys and passwords.

Owns two kinds of rule. Vendor formats (OpenAI `sk-`, AWS `AKIA`, GitHub `ghp_`, Slack `xox?-`,
Stripe, GitLab, Google, JWTs, PEM private keys) are recognised by their fixed shape. Anything
else counts only when assigned to a key-like name (`api_key=`, `"client_secret": ...`,
`Authorization: Bearer ...`) and the value looks random: long enough, letters and digits, high
Shannon entropy, and not a placeholder or a code reference. Each rule is anchored at a literal
trigger found with `str.find`, because scanning prose with a many-branch regex is slow.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from service.domain.pii.text import Span, Text

# (trigger, pattern matched from the trigger's position minus offset, offset)
_VENDOR_RULES: tuple[tuple[str, re.Pattern[str], int], ...] = tuple(
    (trigger, re.compile(pattern, re.DOTALL), offset)
    for trigger, pattern, offset in (
        (
            "-----BEGIN ",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s]*)",
            0,
        ),
        ("eyJ", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*", 0),
        ("sk-", r"(?<![\w-])sk-[A-Za-z0-9_-]{20,}", 0),
        ("k_live_", r"\b[sr]k_live_[A-Za-z0-9]{16,}", 1),
        ("k_test_", r"\b[sr]k_test_[A-Za-z0-9]{16,}", 1),
        ("AKIA", r"\bAKIA[A-Z0-9]{16}\b", 0),
        ("ASIA", r"\bASIA[A-Z0-9]{16}\b", 0),
        ("gh", r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", 0),
        ("github_pat_", r"\bgithub_pat_[A-Za-z0-9_]{40,}", 0),
        ("glpat-", r"\bglpat-[A-Za-z0-9_-]{20,}", 0),
        ("xox", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", 0),
        ("hooks.slack.com", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}", 8),
        ("AIza", r"\bAIza[0-9A-Za-z_-]{35}", 0),
    )
)

_BEARER = re.compile(r"(?i)(?:bearer|basic)\s+([A-Za-z0-9._~+/-]{20,}=*)")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_KEY_TRIGGERS = ("key", "secret", "token", "passw", "passphrase", "credential")
_ASSIGNED = re.compile(
    r"(?i)[\w.-]*?(api[_-]?key|apikey|secret|token|passw(?:or)?d|passphrase|access[_-]?key"
    r"|auth[_-]?key|private[_-]?key|credential)s?(?:[_.-][\w.-]*)?[\"']?\s*(?:[:=]|=>)"
    r"\s*[\"']?([^\s\"',;\[\](){}<>`]{8,})"
)
# Code references (settings.SECRET_KEY), snake_case names and placeholders are not secrets.
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_WORDS_NAME = re.compile(r"(?:[a-z0-9]+[_-]){2,}[a-z0-9]+")
_PLACEHOLDER = re.compile(r"(?i)x{4,}|\*{4,}|your[_-]|changeme|example|redacted|\$\{|%\(")
_MIN_RANDOM_LENGTH = 16
_NAME_AND_ASSIGNMENT = 48
_MIN_ENTROPY_BITS = 3.0


def shannon_entropy(value: str) -> float:
    """Bits per character of the value's own character distribution."""
    counts = Counter(value)
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts.values())


def looks_random(value: str, *, password: bool) -> bool:
    if _PLACEHOLDER.search(value) or _DOTTED_NAME.fullmatch(value):
        return False
    has_digit = any(char.isdigit() for char in value)
    if password:
        return has_digit or not value.isalpha()
    if _WORDS_NAME.fullmatch(value) or len(value) < _MIN_RANDOM_LENGTH:
        return False
    has_alpha = any(char.isalpha() for char in value)
    return has_digit and has_alpha and shannon_entropy(value) >= _MIN_ENTROPY_BITS


def _vendor_secrets(text: Text) -> Iterator[Span]:
    value = text.value
    for trigger, pattern, offset in _VENDOR_RULES:
        index = value.find(trigger)
        while index != -1:
            match = pattern.match(value, index - offset) if index >= offset else None
            if match:
                yield match.span()
            index = value.find(trigger, match.end() if match else index + 1)


def _assignment_follows(lowered: str, index: int) -> bool:
    """Cheap pre-check: an assignment needs a `:` or `=` soon after the key name."""
    end = index + _NAME_AND_ASSIGNMENT
    return lowered.find(":", index, end) != -1 or lowered.find("=", index, end) != -1


def _name_start(value: str, index: int) -> int:
    while index > 0 and value[index - 1] in _NAME_CHARS:
        index -= 1
    return index


def _assigned_secrets(text: Text, lowered: str) -> Iterator[Span]:
    starts = {
        _name_start(text.value, index)
        for trigger in _KEY_TRIGGERS
        for index in text.positions(trigger, lowered)
        if _assignment_follows(lowered, index)
    }
    for start in sorted(starts):
        match = _ASSIGNED.match(text.value, start)
        if match and looks_random(match[2], password=match[1].lower().startswith("pass")):
            yield match.span(2)


def find_secrets(text: Text) -> Iterator[Span]:
    yield from _vendor_secrets(text)
    lowered = text.lower()
    for trigger in ("bearer", "basic"):
        for index in text.positions(trigger, lowered):
            match = _BEARER.match(text.value, index)
            if match and looks_random(match[1], password=False):
                yield match.span(1)
    yield from _assigned_secrets(text, lowered)
