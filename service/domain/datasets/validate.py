"""Streaming validation of fine-tuning JSONL: bytes in, bytes to store out, then a report.

Owns `DatasetValidator`, shared by the upload route (fed chunk by chunk while the body is
written to disk) and `tunegate validate FILE`. Memory stays flat whatever the file size: only
the current partial line is buffered, token counts go into histograms, duplicates into 8-byte
digests. Under PII mode `redact` the bytes returned are the redacted lines (a line is rewritten
only when it held PII); otherwise they are the input, unchanged.

    validator = DatasetValidator(DatasetOptions(model="gpt-4o-mini", pii_mode="redact"))
    for chunk in body:
        sink.write(validator.feed(chunk))
    sink.write(validator.finish())
    report = validator.report()
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.domain.datasets.chat import Problems, TokenPlan
from service.domain.datasets.formats import check_example, detect_format, roles_of
from service.domain.datasets.pii import PiiScanner
from service.domain.datasets.report import DatasetFormat, DatasetReport, PiiMode
from service.domain.datasets.summary import Findings, build_report
from service.domain.datasets.tokens import TokenTally
from service.domain.pii import detect as pii
from service.domain.pricing import PriceTable

__all__ = [
    "DatasetOptions",
    "DatasetReport",
    "DatasetValidator",
    "iter_file_chunks",
    "validate_file",
    "write_validated",
]

CHUNK_SIZE = 1 << 20
_BOM = b"\xef\xbb\xbf"


class DatasetOptions(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str | None = None  # the base model to be tuned, when known
    pii_mode: PiiMode = "allow"
    pii_entities: tuple[str, ...] = pii.ALL_ENTITIES
    max_errors: int = Field(default=50, ge=0)  # errors listed; all are counted
    max_lines_listed: int = Field(default=20, ge=0)  # line numbers per warning / PII summary
    min_examples: int = Field(default=10, ge=0)
    prices: PriceTable | None = None  # None: the packaged price table

    @field_validator("pii_entities")
    @classmethod
    def _known_entities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(pii.ALL_ENTITIES)
        if unknown:
            raise ValueError(f"unknown PII entities: {', '.join(sorted(unknown))}")
        return value


class DatasetValidator:
    def __init__(self, options: DatasetOptions | None = None) -> None:
        self.options = options or DatasetOptions()
        self._found = Findings(self.options)
        self._tally = TokenTally(self.options)
        self._pending = b""
        self._line = 0
        self._sha256 = hashlib.sha256()
        self._stored = 0
        self._finished = False
        self._scanner = PiiScanner(self.options.pii_entities) if self.options.pii_entities else None

    # --- the streaming API -------------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        """Validates the complete lines now available; returns the bytes to store for them."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        data = self._pending + chunk if self._pending else bytes(chunk)
        cut = data.rfind(b"\n") + 1
        self._pending = data[cut:]
        stored = self._lines(data[:cut].split(b"\n")[:-1], newline=True) if cut else []
        self._tally.flush()
        return self._store(chunk if self.options.pii_mode != "redact" else b"".join(stored))

    def finish(self) -> bytes:
        """Validates the last line (one without a final newline); returns its bytes to store."""
        if self._finished:
            return b""
        self._finished = True
        last, self._pending = self._pending, b""
        stored = self._lines([last], newline=False) if last else []
        self._tally.flush()
        self._found.finish_file(self._tally, self._line)
        return self._store(b"".join(stored) if self.options.pii_mode == "redact" else b"")

    def report(self) -> DatasetReport:
        if not self._finished:
            raise RuntimeError("report() before finish()")
        sha256 = self._sha256.hexdigest()
        return build_report(self._found, self._tally, self._line, self._stored, sha256)

    # --- one line ----------------------------------------------------------------------------

    def _store(self, data: bytes) -> bytes:
        self._sha256.update(data)
        self._stored += len(data)
        return data

    def _lines(self, lines: list[bytes], *, newline: bool) -> list[bytes]:
        end = b"\n" if newline else b""
        return [self._check_line(raw) + end for raw in lines]

    def _check_line(self, raw: bytes) -> bytes:
        self._line += 1
        number = self._line
        body = raw[3:] if number == 1 and raw.startswith(_BOM) else raw
        if body is not raw:
            self._found.warn("utf8_bom", number)
        if not body.strip():
            self._found.error(number, "blank_line", "blank line")
            return raw
        self._found.examples += 1
        try:
            example = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._unparseable(raw, body, number)
        if self._scanner is not None:
            example, raw = self._pii(self._scanner, example, raw, number)
        if not isinstance(example, dict):
            self._found.error(number, "data_type", "each line must be a JSON object")
        else:
            self._check_example(example, raw, number)
        return raw

    def _unparseable(self, raw: bytes, body: bytes, number: int) -> bytes:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            self._found.error(number, "invalid_utf8", "the line is not valid UTF-8")
            return raw
        self._found.error(number, "invalid_json", "the line is not valid JSON")
        if self._scanner is None:
            return raw
        if self.options.pii_mode == "redact":
            redacted, counts = pii.redact(text, self.options.pii_entities)
            self._found.pii(number, counts)
            return redacted.encode() if counts else raw
        self._found.pii(number, self._scanner.count_text(text))
        return raw

    def _pii(self, scanner: PiiScanner, example: Any, raw: bytes, number: int) -> tuple[Any, bytes]:
        counts = scanner.count(example)
        if counts and self.options.pii_mode == "redact":
            counts = Counter()
            redacted = scanner.redact(example, counts)
            if counts:
                example, raw = redacted, _dump_line(redacted, raw, self.options.pii_entities)
        self._found.pii(number, counts)
        return example, raw

    def _check_example(self, example: dict[str, Any], raw: bytes, number: int) -> None:
        fmt = detect_format(example)
        if fmt is None:
            self._found.error(number, "missing_messages_list", "no messages found")
            return
        if not self._found.accept_format(fmt, number):
            return
        problems = Problems()
        plan = check_example(example, fmt, problems)
        for kind, message in problems.found.items():
            self._found.error(number, kind, message)
        if not problems.found:
            self._valid_example(example, fmt, plan, raw, number)

    def _valid_example(
        self, example: dict[str, Any], fmt: DatasetFormat, plan: TokenPlan, raw: bytes, line: int
    ) -> None:
        self._found.duplicate(raw.strip(), line)
        if fmt == "completion":
            self._found.legacy(example["prompt"], example["completion"], line)
        else:
            self._found.roles(roles_of(example, fmt), line)
        self._tally.add(plan, line, fmt)


def _dump_line(example: Any, raw: bytes, entities: tuple[str, ...]) -> bytes:
    try:
        return orjson.dumps(example)
    except orjson.JSONEncodeError:
        # orjson writes at most 255 levels of nesting but reads 1024; redact such text as is.
        return pii.redact(raw.decode("utf-8"), entities)[0].encode()


def iter_file_chunks(path: Path | str, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(size):
            yield chunk


def write_validated(
    chunks: Iterable[bytes], sink: BinaryIO, options: DatasetOptions | None = None
) -> DatasetReport:
    """Validates a stream of chunks, writing the bytes to store (redacted, if asked) to sink."""
    validator = DatasetValidator(options)
    for chunk in chunks:
        sink.write(validator.feed(chunk))
    sink.write(validator.finish())
    return validator.report()


def validate_file(path: Path | str, options: DatasetOptions | None = None) -> DatasetReport:
    """The report for a file on disk; nothing is written."""
    validator = DatasetValidator(options)
    for chunk in iter_file_chunks(path):
        validator.feed(chunk)
    validator.finish()
    return validator.report()
