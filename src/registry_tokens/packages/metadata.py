"""Reading a Python distribution's own metadata: the file name alone is never trusted.

A wheel's ``*.dist-info/METADATA`` and an sdist's ``PKG-INFO`` name the project and its
version; the file name must agree with them. Archives are inspected, never extracted, and
any member with an absolute path, a ``..`` component, or (in an sdist) a link or device is
refused, since a client unpacking it could write outside its target directory.
"""

import tarfile
import zipfile
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path, PurePosixPath

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

MAX_METADATA_BYTES = 1024 * 1024
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
    if "/" in filename or "\\" in filename or filename.startswith("."):
        raise BadDistribution(f"{filename!r} is not a plain file name")
    if filename.endswith(".whl"):
        return _read_wheel(path, filename)
    if filename.endswith(".tar.gz"):
        return _read_sdist(path, filename)
    raise BadDistribution("only wheels (.whl) and source distributions (.tar.gz) can be published")


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
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise BadDistribution(f"{source} does not declare a Name and a Version")
    try:
        Version(version)
    except InvalidVersion as exc:
        raise BadDistribution(f"{source} declares an invalid version {version!r}") from exc
    return str(name).strip(), str(version).strip(), headers.get("Requires-Python")


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
