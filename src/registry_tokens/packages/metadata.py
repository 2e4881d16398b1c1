"""Reading a Python distribution's own metadata: the file name alone is never trusted.

A wheel's ``*.dist-info/METADATA`` and an sdist's ``PKG-INFO`` name the project and its
version; the file name must agree with them. Archives are inspected, never extracted, and
any member with an absolute path, a ``..`` component, or (in an sdist) a link or device is
refused, since a client unpacking it could write outside its target directory.
"""

import re
import tarfile
import zipfile
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path, PurePosixPath

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
# PEP 508 project names, and file names made only of what those and versions use.
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
_PLAIN_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*$")
MAX_MEMBERS = 100_000
# Reading an sdist's member list decompresses it; a small upload must not expand forever.
MAX_UNCOMPRESSED_BYTES = 4 * 1024 * 1024 * 1024


class BadDistribution(ValueError):
    """The upload is not a distribution we can publish; the message says why."""


@dataclass(frozen=True)
class Distribution:
    name: str
    version: str
    kind: str  # "wheel" or "sdist"
    requires_python: str | None

    @property
    def project(self) -> str:
        return canonicalize_name(self.name)


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


def _check_member_path(name: str) -> None:
    posix = PurePosixPath(name)
    if (
        name.startswith(("/", "\\"))
        or "\\" in name
        or ".." in posix.parts
        or (len(name) > 1 and name[1] == ":")
    ):
        raise BadDistribution(f"the archive contains an unsafe path: {name!r}")


def _parse_metadata(raw: bytes, source: str) -> tuple[str, str, str | None]:
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
    return name, version, requires_python


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
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise BadDistribution("the wheel has too many files")
            for member in members:
                _check_member_path(member.filename)
            metadata_files = [
                member
                for member in members
                if len(PurePosixPath(member.filename).parts) == 2
                and PurePosixPath(member.filename).parts[0].endswith(".dist-info")
                and PurePosixPath(member.filename).name == "METADATA"
            ]
            if len(metadata_files) != 1:
                raise BadDistribution("the wheel has no single .dist-info/METADATA file")
            if metadata_files[0].file_size > MAX_METADATA_BYTES:
                raise BadDistribution("the wheel's METADATA is too large")
            raw = archive.read(metadata_files[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise BadDistribution("the file is not a valid wheel (zip) archive") from exc
    name, version, requires_python = _parse_metadata(raw, "the wheel's METADATA")
    _agree(filename, name, version, file_name, file_version)
    return Distribution(name, version, "wheel", requires_python)


def _read_sdist(path: Path, filename: str) -> Distribution:
    try:
        file_name, file_version = parse_sdist_filename(filename)
    except InvalidSdistFilename as exc:
        raise BadDistribution(f"{filename!r} is not a valid sdist file name") from exc
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            raw: bytes | None = None
            expanded = 0
            for count, member in enumerate(archive, start=1):
                expanded += member.size
                if count > MAX_MEMBERS or expanded > MAX_UNCOMPRESSED_BYTES:
                    raise BadDistribution("the sdist is too large once uncompressed")
                _check_member_path(member.name)
                if not (member.isfile() or member.isdir()):
                    raise BadDistribution(
                        f"the sdist contains a link or special file: {member.name!r}"
                    )
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
    name, version, requires_python = _parse_metadata(raw, "the sdist's PKG-INFO")
    _agree(filename, name, version, file_name, file_version)
    return Distribution(name, version, "sdist", requires_python)
