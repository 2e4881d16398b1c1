"""A multipart/form-data body read as a stream of events, for a route that must decide
about a file (authorize it, bound it) before a byte of it is kept: S3's presigned POST,
whose policy fields come before the file. Parsing is python-multipart's; this only turns
its callbacks into events, holding no more than one field's value in memory."""

from dataclasses import dataclass

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header


class BadForm(ValueError):
    """The body is not a well-formed multipart form, or breaks the bounds given."""


@dataclass(frozen=True)
class Field:
    name: str
    value: str


@dataclass(frozen=True)
class FileStart:
    name: str
    filename: str


@dataclass(frozen=True)
class FileData:
    data: bytes


@dataclass(frozen=True)
class FileEnd:
    pass


Event = Field | FileStart | FileData | FileEnd


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type; ``None`` for any other."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    return boundary if kind == b"multipart/form-data" and boundary else None


class FormEvents:
    def __init__(self, boundary: bytes, *, max_fields: int, max_field_bytes: int) -> None:
        self.max_fields = max_fields
        self.max_field_bytes = max_field_bytes
        self.events: list[Event] = []
        self.fields = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def feed(self, chunk: bytes) -> list[Event]:
        """The events that this chunk of the body completes."""
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise BadForm(f"The multipart form is malformed: {exc}") from exc
        events, self.events = self.events, []
        return events

    def finish(self) -> None:
        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise BadForm(f"The multipart form is malformed: {exc}") from exc

    def _part_begin(self) -> None:
        self._headers, self._name, self._is_file = {}, None, False
        self._value = bytearray()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if disposition != b"form-data" or name is None:
            raise BadForm("A part of the multipart form has no name")
        self._name = name.decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is not None:
            self._is_file = True
            self.events.append(FileStart(self._name, filename.decode("utf-8", "replace")))
            return
        self.fields += 1
        if self.fields > self.max_fields:
            raise BadForm(f"The multipart form has more than {self.max_fields} fields")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.events.append(FileData(data[start:end]))
            return
        self._value += data[start:end]
        if len(self._value) > self.max_field_bytes:
            raise BadForm(f"The form field {self._name} is over {self.max_field_bytes} bytes")

    def _part_end(self) -> None:
        if self._is_file:
            self.events.append(FileEnd())
        elif self._name is not None:
            self.events.append(Field(self._name, self._value.decode("utf-8", "replace")))
