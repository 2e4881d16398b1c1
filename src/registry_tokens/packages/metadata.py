"""Reading a Python distribution's own metadata: the file name alone is never trusted.

A wheel's ``*.dist-info/METADATA`` and an sdist's ``PKG-INFO`` name the project and its
version; the file name must agree with them. Archives are inspected, never extracted, and
any member with an absolute path, a ``..`` component, a link or a device is refused, since
a client unpacking it could write outside its target directory.

Inspection runs in bounded memory whatever the upload claims. ``zipfile`` reads and parses
a zip's whole central directory when it opens one, so the directory's size and entries are
checked first, from the end-of-central-directory record and the entries' fixed headers.
``tarfile`` reads a pax or GNU long-name header's whole payload into memory, so every header
is checked as ``tarfile`` reads it (``TarInfo.frombuf``), before what it announces is read:
extended headers are bounded one by one and together, and the decompressed stream as a
whole.
"""

import os
import re
import stat
import struct
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Self

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

MAX_METADATA_BYTES = 1024 * 1024
MAX_FIELD_LENGTH = 255  # file names and the metadata fields we store
MAX_SUMMARY_LENGTH = 512
# PEP 508 project names, and file names made only of what those and versions use.
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_PLAIN_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")
MAX_MEMBERS = 100_000
# Reading an sdist's member list decompresses it; a small upload must not expand forever.
MAX_UNCOMPRESSED_BYTES = 4 * 1024 * 1024 * 1024
# tarfile holds an extended header's payload (pax ``x``/``g``, GNU long name ``L``/``K``) in
# memory, parses pax records with a regex that is quadratic in the payload on Python
# < 3.11.10, and keeps what they say with every member: each payload is bounded (a 4096-byte
# path fits twice), and so are all of an archive's together, where a pax header also counts
# the global headers before it, which every member it describes keeps a copy of.
MAX_EXTENDED_HEADER_BYTES = 8 * 1024
MAX_EXTENDED_HEADERS_TOTAL_BYTES = 4 * 1024 * 1024
# zipfile reads and parses the whole central directory on opening: 100,000 entries with
# 120-byte paths fit.
MAX_CENTRAL_DIRECTORY_BYTES = 16 * 1024 * 1024
_EXTENDED_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
# What a zip member's Unix mode (the high 16 bits of external_attr) may say it is: unset, a
# regular file or a directory; never a link or a device.
_ZIP_MEMBER_KINDS = (0, stat.S_IFREG, stat.S_IFDIR)
# The zip records that locate the central directory, as zipfile reads them.
_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL_ENTRY = struct.Struct("<4s4B4HL2L5H2L")
_CENTRAL_ENTRY_SIGNATURE = b"PK\x01\x02"


class BadDistribution(ValueError):
    """The upload is not a distribution we can publish; the message says why."""


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str
    kind: str  # "wheel" or "sdist"
    requires_python: str | None
    summary: str | None = None  # shown, never relied on: None when unusable

    @property
    def project(self) -> str:
        return canonicalize_name(self.name)


def wheel_tags(filename: str) -> str | None:
    """A wheel's compatibility tags as its file name spells them (``py3-none-any``): what
    tells one file of a version from another, Buildkite's ``variant``. ``None`` for an sdist."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[: -len(".whl")].split("-")
    return "-".join(parts[-3:]) if len(parts) >= 5 else None


def distribution_identity(filename: str) -> tuple[object, ...]:
    """What a file name says the file is: two spellings of one wheel or sdist are equal.

    Wheels: project, version, build tag and compatibility tags; sdists: project and
    version. ``hello_pkg-1.0-py3-none-any.whl`` and ``Hello_Pkg-1.0.0-py3-none-any.whl``
    are one file to pip, so a registry must not hold both.
    """
    try:
        if filename.endswith(".whl"):
            return ("wheel", *parse_wheel_filename(filename))
        if filename.endswith(".tar.gz"):
            return ("sdist", *parse_sdist_filename(filename))
    except (InvalidWheelFilename, InvalidSdistFilename):
        pass
    return ("file", filename)


def read_distribution(path: Path, filename: str) -> Distribution:
    """The metadata of the wheel or sdist at ``path``, uploaded as ``filename``."""
    if not _PLAIN_FILENAME.match(filename) or len(filename) > MAX_FIELD_LENGTH:
        raise BadDistribution(
            f"{filename!r} is not a plain file name (letters, digits, '.', '_', '-', '+', "
            f"'!' only, at most {MAX_FIELD_LENGTH} characters)"
        )
    if filename.endswith(".whl"):
        reader, kind = _read_wheel, "wheel (zip) archive"
    elif filename.endswith(".tar.gz"):
        reader, kind = _read_sdist, "sdist (.tar.gz) archive"
    else:
        raise BadDistribution(
            "only wheels (.whl) and source distributions (.tar.gz) can be published"
        )
    try:
        return reader(path, filename)
    except BadDistribution:
        raise
    except Exception as exc:
        # Archive readers raise many things on hostile input (RuntimeError for encrypted
        # zips, NotImplementedError for unknown compression, zlib.error...): all are 4xx.
        raise BadDistribution(f"the file cannot be read as a valid {kind}") from exc


def check_member_path(name: str) -> None:
    posix = PurePosixPath(name)
    if (
        name.startswith(("/", "\\"))
        or "\\" in name
        or ".." in posix.parts
        or (len(name) > 1 and name[1] == ":")
    ):
        raise BadDistribution(f"the archive contains an unsafe path: {name!r}")


def _parse_metadata(raw: bytes, source: str) -> tuple[str, str, str | None, str | None]:
    headers = BytesHeaderParser().parsebytes(raw)
    name, version = _header(headers, "Name"), _header(headers, "Version")
    requires_python = _header(headers, "Requires-Python")
    if not name or not version:
        raise BadDistribution(f"{source} does not declare a Name and a Version")
    if not _PROJECT_NAME.match(name):
        raise BadDistribution(f"{source} declares an invalid project name {name!r}")
    try:
        Version(version)
    except InvalidVersion as exc:
        raise BadDistribution(f"{source} declares an invalid version {version!r}") from exc
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier as exc:
            raise BadDistribution(
                f"{source} declares an invalid Requires-Python {requires_python!r}"
            ) from exc
    return name, version, requires_python, _summary(headers)


def _summary(headers: Message) -> str | None:
    """The one-line ``Summary``, as UTF-8 text on one line; ``None`` if it is not that."""
    # The raw value: its non-ASCII bytes are still there as surrogate escapes.
    value = next((v for k, v in headers.raw_items() if k.lower() == "summary"), None)
    if value is None:
        return None
    try:
        text = value.encode("ascii", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return None
    text = " ".join(text.split())
    if not text or len(text) > MAX_SUMMARY_LENGTH or not text.isprintable():
        return None
    return text


def _header(headers: Message, name: str) -> str | None:
    """A metadata field as plain, bounded ASCII text (the core metadata fields we keep)."""
    value = headers.get(name)
    if value is None:
        return None
    text = str(value).strip()
    if not text.isascii() or len(text) > MAX_FIELD_LENGTH or "\x00" in text:
        raise BadDistribution(f"the {name} field is not short ASCII text")
    return text


def _agree(filename: str, name: str, version: str, file_name: str, file_version: Version) -> None:
    if canonicalize_name(name) != canonicalize_name(file_name) or Version(version) != file_version:
        raise BadDistribution(
            f"the file name {filename!r} does not match its metadata ({name} {version})"
        )


def _read_wheel(path: Path, filename: str) -> Distribution:
    try:
        file_name, file_version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise BadDistribution(f"{filename!r} is not a valid wheel file name") from exc
    try:
        with path.open("rb") as handle:
            _check_central_directory(handle)
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise BadDistribution(_too_many_files("wheel"))
            for member in members:
                check_member_path(member.filename)
                if stat.S_IFMT(member.external_attr >> 16) not in _ZIP_MEMBER_KINDS:
                    raise BadDistribution(
                        f"the wheel contains a link or special file: {member.filename!r}"
                    )
            metadata_files = [
                member
                for member in members
                if len(PurePosixPath(member.filename).parts) == 2
                and PurePosixPath(member.filename).parts[0].endswith(".dist-info")
                and PurePosixPath(member.filename).name == "METADATA"
            ]
            if len(metadata_files) != 1:
                raise BadDistribution("the wheel has no single .dist-info/METADATA file")
            # Its compressed size too: zipfile reads that much before it can check the CRC.
            if max(metadata_files[0].file_size, metadata_files[0].compress_size) > (
                MAX_METADATA_BYTES
            ):
                raise BadDistribution("the wheel's METADATA is too large")
            raw = archive.read(metadata_files[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise BadDistribution("the file is not a valid wheel (zip) archive") from exc
    name, version, requires_python, summary = _parse_metadata(raw, "the wheel's METADATA")
    _agree(filename, name, version, file_name, file_version)
    return Distribution(name, version, "wheel", requires_python, summary)


def _read_sdist(path: Path, filename: str) -> Distribution:
    try:
        file_name, file_version = parse_sdist_filename(filename)
    except InvalidSdistFilename as exc:
        raise BadDistribution(f"{filename!r} is not a valid sdist file name") from exc
    try:
        raw: bytes | None = None
        for archive, member in safe_tar_members(path, "sdist"):
            parts = PurePosixPath(member.name).parts
            if len(parts) == 2 and parts[1] == "PKG-INFO" and member.isfile():
                if member.size > MAX_METADATA_BYTES:
                    raise BadDistribution("the sdist's PKG-INFO is too large")
                extracted = archive.extractfile(member)
                if extracted is not None:
                    raw = extracted.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadDistribution("the file is not a valid sdist (.tar.gz) archive") from exc
    if raw is None:
        raise BadDistribution("the sdist has no top-level PKG-INFO file")
    name, version, requires_python, summary = _parse_metadata(raw, "the sdist's PKG-INFO")
    _agree(filename, name, version, file_name, file_version)
    return Distribution(name, version, "sdist", requires_python, summary)


def safe_tar_members(path: Path, kind: str) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """The members of the gzipped tar at ``path`` (an sdist, an npm tarball …), each one
    refused unless safe to unpack (a plain path, no link, device or sparse file), and
    all read under :class:`TarBudget`'s bounds. ``tarfile``'s own errors pass through."""
    budget = TarBudget(kind)
    with tarfile.open(path, mode="r:gz", tarinfo=budget.tarinfo()) as archive:
        for member in archive:
            # The member's data (its size as pax may have set it) is skipped, that is
            # decompressed, when the next member is read: counted before that.
            budget.expand(member.size)
            check_member_path(member.name)
            if member.sparse is not None:
                raise sparse_file(member.name, kind)
            if not (member.isfile() or member.isdir()):
                raise BadDistribution(
                    f"the {kind} contains a link or special file: {member.name!r}"
                )
            yield archive, member


def _too_many_files(kind: str) -> str:
    return f"the {kind} has too many files (at most {MAX_MEMBERS})"


def sparse_file(name: str, kind: str) -> BadDistribution:
    return BadDistribution(f"the {kind} contains a sparse file: {name!r}")


class TarBudget:
    """What one gzipped tar (an sdist, an npm tarball) may cost to read, charged header by
    header as ``tarfile`` reads them; ``kind`` names it in refusals.

    :meth:`tarinfo` is the ``TarInfo`` class ``tarfile`` builds every header with: its
    ``frombuf`` (which parses one 512-byte header block) charges the header before
    ``tarfile`` reads the payload or data it announces, and refuses what is over a bound.
    """

    def __init__(self, kind: str = "sdist") -> None:
        self.kind = kind  # what the archive is called in refusals: "sdist", "tarball"
        self.members = 0
        self.expanded = 0  # decompressed bytes: headers, extended payloads, members' data
        self.extended = 0  # extended header bytes, each pax header counting the globals
        self.global_headers = 0

    def tarinfo(self) -> type[tarfile.TarInfo]:
        budget = self

        class BudgetedTarInfo(tarfile.TarInfo):
            @classmethod
            def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
                header = super().frombuf(buf, encoding, errors)
                budget.admit(header)
                return header

            # GNU sparse format 1.0 keeps its map in the member's data, which tarfile reads
            # into a list with no bound (the map's length is the attacker's number); no
            # sdist holds sparse files. (Formats 0.0 and 0.1 live in the bounded pax header,
            # and the member is refused as sparse once read.)
            def _proc_gnusparse_10(
                self, _next: tarfile.TarInfo, pax_headers: dict[str, str], _archive: object
            ) -> None:
                raise sparse_file(pax_headers.get("GNU.sparse.name", ""), budget.kind)

        return BudgetedTarInfo

    def admit(self, header: tarfile.TarInfo) -> None:
        self.expand(tarfile.BLOCKSIZE)
        if header.type == tarfile.GNUTYPE_SPARSE:
            # Its sparse map continues in extra header blocks tarfile reads with no bound.
            raise sparse_file(header.name, self.kind)
        if header.type not in _EXTENDED_TYPES:
            self.members += 1
            if self.members > MAX_MEMBERS:
                raise BadDistribution(_too_many_files(self.kind))
            return
        self.expand(header.size)
        if header.size > MAX_EXTENDED_HEADER_BYTES:
            raise BadDistribution(
                f"the {self.kind} has an extended (pax or long name) header of {header.size} bytes "
                f"(at most {MAX_EXTENDED_HEADER_BYTES})"
            )
        if header.type == tarfile.XGLTYPE:
            self.global_headers += header.size
            self.extended += header.size
        elif header.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
            self.extended += header.size + self.global_headers
        else:
            self.extended += header.size
        if self.extended > MAX_EXTENDED_HEADERS_TOTAL_BYTES:
            raise BadDistribution(
                f"the {self.kind}'s extended (pax or long name) headers hold more than "
                f"{MAX_EXTENDED_HEADERS_TOTAL_BYTES} bytes in all"
            )

    def expand(self, size: int) -> None:
        if size < 0:  # a base-256 size field, or a pax "size", may be negative
            raise BadDistribution(f"the file is not a valid {self.kind} (.tar.gz) archive")
        self.expanded += size
        if self.expanded > MAX_UNCOMPRESSED_BYTES:
            raise BadDistribution(
                f"the {self.kind} is too large once uncompressed "
                f"(at most {MAX_UNCOMPRESSED_BYTES} bytes)"
            )


def _check_central_directory(handle: BinaryIO) -> None:
    """Refuses a zip whose central directory is too large or has too many entries, before
    ``zipfile`` reads and parses it: found as ``zipfile`` finds it (the end-of-central-
    directory record, at the very end or within the 64 KiB comment before it, then any
    ZIP64 record just before that), and its entries counted from their fixed headers."""
    file_size = handle.seek(0, os.SEEK_END)
    if file_size < _EOCD.size:
        raise BadDistribution("the file is not a valid wheel (zip) archive")
    handle.seek(file_size - _EOCD.size)
    record = handle.read(_EOCD.size)
    location = file_size - _EOCD.size
    if record[:4] != _EOCD_SIGNATURE or record[-2:] != b"\0\0":
        search_from = max(location - (1 << 16), 0)
        handle.seek(search_from)
        tail = handle.read()
        found = tail.rfind(_EOCD_SIGNATURE)
        record = tail[found : found + _EOCD.size]
        if found < 0 or len(record) != _EOCD.size:
            raise BadDistribution("the file is not a valid wheel (zip) archive")
        location = search_from + found
    entries, size = _EOCD.unpack(record)[4:6]
    start = location - size
    before_record = location - _EOCD64_LOCATOR.size
    if before_record >= 0:
        handle.seek(before_record)
        locator = handle.read(_EOCD64_LOCATOR.size)
        if len(locator) == _EOCD64_LOCATOR.size and locator[:4] == b"PK\x06\x07":
            if before_record < _EOCD64.size:
                raise BadDistribution("the file is not a valid wheel (zip) archive")
            handle.seek(before_record - _EOCD64.size)
            record64 = handle.read(_EOCD64.size)
            if len(record64) == _EOCD64.size and record64[:4] == b"PK\x06\x06":
                entries, size = _EOCD64.unpack(record64)[7:9]
                start = before_record - _EOCD64.size - size
    if entries > MAX_MEMBERS:
        raise BadDistribution(_too_many_files("wheel"))
    if size > MAX_CENTRAL_DIRECTORY_BYTES:
        raise BadDistribution(
            f"the wheel's central directory is {size} bytes (at most {MAX_CENTRAL_DIRECTORY_BYTES})"
        )
    if start < 0:
        raise BadDistribution("the file is not a valid wheel (zip) archive")
    handle.seek(start)
    directory = handle.read(size)
    position = count = 0
    # zipfile reads entries for as long as the directory's size says, whatever the count.
    while position < size:
        entry = directory[position : position + _CENTRAL_ENTRY.size]
        if len(entry) != _CENTRAL_ENTRY.size or entry[:4] != _CENTRAL_ENTRY_SIGNATURE:
            raise BadDistribution("the file is not a valid wheel (zip) archive")
        name_length, extra_length, comment_length = _CENTRAL_ENTRY.unpack(entry)[12:15]
        position += _CENTRAL_ENTRY.size + name_length + extra_length + comment_length
        count += 1
        if count > MAX_MEMBERS:
            raise BadDistribution(_too_many_files("wheel"))
