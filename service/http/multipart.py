"""Streaming `multipart/form-data`: the file part goes to a sink in batches as it arrives, never
whole in memory; small text fields are collected. Parsing is python-multipart's.

An upload needs only `purpose` besides the file, so what is held in memory is bounded: at most
`MAX_FIELDS` other parts (400 past it), `MAX_FIELD_BYTES` each and `MAX_FIELDS_BYTES` together
(413 past either), and `MAX_PART_HEAD_BYTES` of headers per part (400)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import InvalidRequest, PayloadTooLarge

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS_BYTES = 64 * 1024
MAX_FIELDS = 16
MAX_PART_HEAD_BYTES = 16 * 1024
BATCH_BYTES = 1 << 20


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    value: bytearray = field(default_factory=bytearray)


@dataclass
class Form:
    fields: dict[str, str]
    file_field: str | None
    filename: str | None


FileSink = Callable[[str, dict[str, str]], Awaitable[None]]
ChunkSink = Callable[[bytes], Awaitable[None]]


def boundary_of(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest(
            "Send the file as multipart/form-data with a boundary.", code="invalid_content_type"
        )
    return boundary


class _Collector:
    def __init__(self) -> None:
        self.part = _Part()
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.fields: dict[str, str] = {}
        self.field_parts = 0
        self.fields_bytes = 0
        self.head_bytes = 0
        self.file_started: str | None = None
        self.filename: str | None = None
        self.pending = bytearray()
        self.in_file = False
        self.events: list[tuple[str, bytes | str]] = []

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda d, s, e: self.on_head(self.header_field, d[s:e]),
            "on_header_value": lambda d, s, e: self.on_head(self.header_value, d[s:e]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.part = _Part()
        self.head_bytes = 0

    def on_head(self, into: bytearray, data: bytes) -> None:
        self.head_bytes += len(data)
        if self.head_bytes > MAX_PART_HEAD_BYTES:
            raise InvalidRequest(
                f"A multipart part has more than {MAX_PART_HEAD_BYTES} bytes of headers.",
                code="invalid_multipart",
            )
        into.extend(data)

    def on_header_end(self) -> None:
        self.part.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is not None:
            if self.file_started is not None:
                raise InvalidRequest("Send exactly one file per upload.", param="file")
            self.part.filename = filename.decode("utf-8", "replace")
            self.file_started = self.part.name
            self.filename = self.part.filename
            self.in_file = True
            self.events.append(("file", self.part.filename))
            return
        self.field_parts += 1
        if self.field_parts > MAX_FIELDS:
            raise InvalidRequest(
                f"The upload has more than {MAX_FIELDS} form fields; send 'purpose' and the file.",
                param=self.part.name,
                code="too_many_fields",
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.pending.extend(data[start:end])
            return
        self.part.value.extend(data[start:end])
        self.fields_bytes += end - start
        if len(self.part.value) > MAX_FIELD_BYTES:
            raise PayloadTooLarge(
                f"Form field '{self.part.name}' is over {MAX_FIELD_BYTES} bytes.",
                param=self.part.name,
            )
        if self.fields_bytes > MAX_FIELDS_BYTES:
            raise PayloadTooLarge(
                f"The upload's form fields are over {MAX_FIELDS_BYTES} bytes together; send "
                "'purpose' and the file.",
                param=self.part.name,
            )

    def on_part_end(self) -> None:
        if self.in_file:
            self.in_file = False
            return
        self.fields[self.part.name] = self.part.value.decode("utf-8", "replace")

    def take_pending(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data


async def read_form(
    stream: AsyncIterator[bytes], boundary: bytes, on_file: FileSink, on_chunk: ChunkSink
) -> Form:
    """Parse the body; call `on_file(filename, fields)` when the file part starts (with the
    fields sent before it) and `on_chunk` with
    its bytes in batches of about `BATCH_BYTES`."""
    collector = _Collector()
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    async for chunk in stream:
        _feed(parser, chunk)
        for _, filename in collector.events:
            await on_file(str(filename), dict(collector.fields))
        collector.events.clear()
        if len(collector.pending) >= BATCH_BYTES or (collector.pending and not collector.in_file):
            await on_chunk(collector.take_pending())
    _feed(parser, None)
    if collector.pending:
        await on_chunk(collector.take_pending())
    return Form(collector.fields, collector.file_started, collector.filename)


def _feed(parser: MultipartParser, chunk: bytes | None) -> None:
    try:
        if chunk is None:
            parser.finalize()
        else:
            parser.write(chunk)
    except FormParserError as error:
        raise InvalidRequest(
            f"Malformed multipart body: {error}", code="invalid_multipart"
        ) from None
