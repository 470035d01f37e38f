"""The PII policy over a whole JSON request body: every string the model reads, by path.

One definition of "what the model reads" for chat, legacy completions, fine-tuning graders and
dataset lines: every string in the JSON value, found by walking it, minus the short allow-list
of structural fields in `STRUCTURAL_KEYS` (roles, types, model names, ids, enum-like options
and the end-user fields that leave only as a keyed hash). A field OpenAI adds tomorrow is
scanned by default. Object keys are content too where they name things the model reads: the
property names of a JSON schema (`properties`, `patternProperties`, `$defs`, `definitions`).
A string that holds JSON (tool-call `arguments`, tool outputs) is redacted inside the parsed
value and written back as JSON, so it stays valid.

Parts the scanner cannot read (images, audio and files as URLs or base64, `data:` URIs, and
legacy prompts given as token ids) are refused under `redact` and `block` unless the policy
says `opaque_parts: allow`; then they pass unscanned.

`redact` rewrites in place and returns the counts per kind; `block` raises `PiiFound` naming
the JSON path of each finding (`messages[2].tool_calls[0].function.arguments`), never a value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from service.domain.pii import detect as pii

Mode = Literal["redact", "block"]

# String values under these keys are structure, not text the model reads.
STRUCTURAL_KEYS = frozenset(
    {
        "role",
        "type",
        "model",
        "id",
        "object",
        "tool_call_id",
        "call_id",
        "previous_response_id",
        "encrypted_content",
        "file_id",
        "status",
        "detail",
        "format",
        "encoding_format",
        "voice",
        "reasoning_effort",
        "service_tier",
        "modalities",
        "truncation",
        "user",
        "safety_identifier",
    }
)
# Objects under these keys map names the model reads (schema property names) to schemas.
NAMING_KEYS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
# Content parts whose payload the scanner cannot read.
OPAQUE_TYPES = frozenset(
    {"image_url", "input_image", "image", "input_audio", "audio", "file", "input_file"}
)
_JSON_OPENERS = ("{", "[")
_MAX_PATHS_NAMED = 20


@dataclass(slots=True)
class Finding:
    path: str
    kinds: tuple[str, ...]


class PiiFound(Exception):
    """`block`: personal data at these paths."""

    def __init__(self, findings: list[Finding]) -> None:
        super().__init__(", ".join(f.path for f in findings))
        self.findings = findings

    @property
    def kinds(self) -> list[str]:
        return sorted({kind for finding in self.findings for kind in finding.kinds})

    @property
    def paths(self) -> list[str]:
        return [finding.path for finding in self.findings]


class OpaquePart(Exception):
    """A part the scanner cannot read, at `path`, under a policy that refuses them."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(f"{what} at {path}")
        self.path = path
        self.what = what


@dataclass(slots=True)
class BodyScanner:
    """Applies one PII mode to JSON values; `counts` adds up what it found."""

    mode: Mode
    entities: tuple[str, ...]
    opaque_allowed: bool = False
    budget: pii.ScanBudget | None = None
    counts: Counter[str] = field(default_factory=Counter)
    found: list[Finding] = field(default_factory=list)

    def scan(self, value: Any, path: str = "") -> Any:
        """The value with the policy applied (rewritten in place under `redact`, where it is a
        container); call `finish` once every part of a request has been scanned."""
        if isinstance(value, str):
            return self._text(value, path)
        pending: list[tuple[Any, str]] = [(value, path)]
        while pending:  # iterative: JSON nests deeper than Python's recursion limit
            container, where = pending.pop()
            nested: list[tuple[Any, str]] = []
            if isinstance(container, dict):
                self._object(container, where, nested)
            elif isinstance(container, list):
                self._array(container, where, nested)
            pending.extend(reversed(nested))  # findings come out in document order
        return value

    def finish(self) -> None:
        """Under `block`, raise `PiiFound` for everything found so far."""
        if self.mode == "block" and self.found:
            raise PiiFound(self.found[:_MAX_PATHS_NAMED])

    def _object(self, obj: dict[str, Any], where: str, pending: list[tuple[Any, str]]) -> None:
        if not self.opaque_allowed and obj.get("type") in OPAQUE_TYPES:
            raise OpaquePart(where or "(body)", f"a part of type {obj['type']!r}")
        for key in list(obj):
            item = obj[key]
            here = f"{where}.{key}" if where else key
            if isinstance(item, str):
                if key not in STRUCTURAL_KEYS:
                    obj[key] = self._text(item, here)
            elif isinstance(item, dict | list):
                if key in NAMING_KEYS and isinstance(item, dict):
                    self._names(item, here)
                    item = obj[key]
                pending.append((item, here))

    def _array(self, array: list[Any], where: str, pending: list[tuple[Any, str]]) -> None:
        for index, item in enumerate(array):
            here = f"{where}[{index}]"
            if isinstance(item, str):
                array[index] = self._text(item, here)
            elif isinstance(item, dict | list):
                pending.append((item, here))

    def _names(self, names: dict[str, Any], where: str) -> None:
        """Schema property names are read by the model: scan (and rename) them."""
        label = f"{where} (a property name)"
        renamed = {self._text(name, label): value for name, value in names.items()}
        if list(renamed) != list(names):
            names.clear()
            names.update(renamed)

    def _text(self, text: str, where: str) -> str:
        if text.startswith("data:"):
            if not self.opaque_allowed:
                raise OpaquePart(where, "a data: URI")
            return text
        if text.lstrip().startswith(_JSON_OPENERS) and (inner := _json_of(text)) is not None:
            return self._json_text(text, inner, where)
        if self.mode == "redact":
            redacted, counts = pii.redact(text, self.entities, self.budget)
            self.counts.update(counts)
            return redacted
        kinds = [finding.kind for finding in pii.detect(text, self.entities, self.budget)]
        if kinds:
            self.counts.update(kinds)
            self.found.append(Finding(where, tuple(sorted(set(kinds)))))
        return text

    def _json_text(self, text: str, inner: Any, where: str) -> str:
        """JSON inside a string: scanned as JSON, written back only when redaction changed it."""
        before = sum(self.counts.values())
        scanned = self.scan(inner, where)
        if self.mode == "redact" and sum(self.counts.values()) != before:
            return orjson.dumps(scanned).decode()
        return text


def _json_of(text: str) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict | list) else None
