"""Building real, small Python distributions in tests (no network, no build backend)."""

import base64
import gzip
import hashlib
import io
import struct
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    module: str | None = None,
    value: str = "hello",
    metadata_name: str | None = None,
    extra_members: dict[str, bytes] | None = None,
    summary: str | None = None,
) -> Path:
    """A pure-Python wheel whose module ``module`` holds ``VALUE = value``."""
    distribution = name.replace("-", "_")
    module = module or distribution.lower()
    dist_info = f"{distribution}-{version}.dist-info"
    files: dict[str, bytes] = {
        f"{module}/__init__.py": f"VALUE = {value!r}\n".encode(),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {metadata_name or name}\nVersion: {version}\n"
            "Requires-Python: >=3.8\n" + (f"Summary: {summary}\n" if summary is not None else "")
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: registry-tokens-tests\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        **(extra_members or {}),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = directory / f"{distribution}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def build_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    metadata_name: str | None = None,
    extra: list[tarfile.TarInfo] | None = None,
) -> Path:
    distribution = name.replace("-", "_")
    root = f"{distribution}-{version}"
    path = directory / f"{root}.tar.gz"
    pkg_info = f"Metadata-Version: 2.1\nName: {metadata_name or name}\nVersion: {version}\n"
    with tarfile.open(path, "w:gz") as archive:
        for member, data in {
            f"{root}/PKG-INFO": pkg_info.encode(),
            f"{root}/pyproject.toml": b"[project]\n",
        }.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra or []:
            archive.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


# --------------------------------------------------------------------------- hostile archives
# Used by the package tests (at the limits' exact edges) and by bench/attacks.py (at their
# full, claimed sizes).

MiB = 1024 * 1024
_ZEROS_MEMBER = gzip.compress(b"\0" * MiB, compresslevel=9, mtime=0)


def gzip_parts(parts: Iterable[bytes | int]) -> bytes:
    """A gzip stream of ``parts`` in order: bytes as they are, an int as that many zero
    bytes. Zeros are sent as a gzip member of one MiB repeated (a gzip stream may hold many
    members), so a gigabyte of them costs about a megabyte and no time to build."""
    out = bytearray()
    for part in parts:
        if isinstance(part, int):
            whole, rest = divmod(part, MiB)
            out += _ZEROS_MEMBER * whole
            if rest:
                out += gzip.compress(b"\0" * rest, mtime=0)
        elif part:
            out += gzip.compress(part, mtime=0)
    return bytes(out)


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    """One 512-byte tar header block of type ``kind`` announcing ``size`` bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime = size, kind, 0
    return info.tobuf(tarfile.GNU_FORMAT)


def _tar_member(name: str, data: bytes) -> bytes:
    padding = -len(data) % tarfile.BLOCKSIZE
    return tar_header(name, len(data)) + data + b"\0" * padding


def pax_record(keyword: str, length: int) -> bytes:
    """A pax record ``"<length> <keyword>=<value>\\n"`` of exactly ``length`` bytes."""
    fixed = len(f" {keyword}=\n")
    digits = len(str(length))
    value = length - fixed - digits
    if value < 0:
        raise ValueError(f"a {keyword} record cannot be {length} bytes")
    return f"{length} {keyword}={'a' * value}\n".encode()


def extended_header_sdist(
    directory: Path,
    name: str,
    version: str,
    headers: Sequence[tuple[bytes, int]],
    *,
    zeros: bool = False,
) -> Path:
    """An sdist in which each ``(kind, size)`` of ``headers`` is an extended header followed
    by a small file it describes: ``tarfile.XHDTYPE`` / ``XGLTYPE`` (pax, a ``comment``
    record) or ``GNUTYPE_LONGNAME`` (the file's long name, under the sdist's root), whose
    payload is exactly ``size`` bytes; or, with ``zeros``, ``size`` zero bytes, cheap at any
    size (see ``gzip_parts``). PKG-INFO comes last."""
    distribution = name.replace("-", "_")
    root = f"{distribution}-{version}"
    parts: list[bytes | int] = []
    for index, (kind, size) in enumerate(headers):
        long_name = kind == tarfile.GNUTYPE_LONGNAME
        parts.append(tar_header("././@LongLink" if long_name else "pax", size, kind))
        padding = -size % tarfile.BLOCKSIZE
        if zeros:
            parts.append(size + padding)
        elif long_name:
            prefix = f"{root}/{index}-"
            payload = f"{prefix}{'a' * (size - len(prefix) - 1)}".encode() + b"\0"
            parts.append(payload + b"\0" * padding)
        else:
            parts.append(pax_record("comment", size) + b"\0" * padding)
        parts.append(_tar_member(f"{root}/file-{index}", b"described by the header before it\n"))
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    parts.append(_tar_member(f"{root}/PKG-INFO", pkg_info) + b"\0" * (2 * tarfile.BLOCKSIZE))
    path = directory / f"{root}.tar.gz"
    path.write_bytes(gzip_parts(parts))
    return path


def sdist_of_zeros(directory: Path, name: str, version: str, size: int) -> Path:
    """A valid sdist whose second member holds ``size`` zero bytes (cheap at any size)."""
    root = f"{name.replace('-', '_')}-{version}"
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    path = directory / f"{root}.tar.gz"
    path.write_bytes(
        gzip_parts(
            [
                _tar_member(f"{root}/PKG-INFO", pkg_info) + tar_header(f"{root}/zeros", size),
                size + (-size % tarfile.BLOCKSIZE) + 2 * tarfile.BLOCKSIZE,
            ]
        )
    )
    return path


def pkg_info_member_bytes(name: str, version: str) -> int:
    """What ``sdist_of_zeros``'s PKG-INFO counts once uncompressed: its header and data."""
    return tarfile.BLOCKSIZE + len(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def sparse_sdist(directory: Path, name: str, version: str, *, map_entries: int) -> Path:
    """An sdist holding a GNU sparse file of format 1.0, whose map (in the file's data)
    announces ``map_entries`` regions and lists them all (as zeros: cheap at any count)."""
    distribution = name.replace("-", "_")
    root = f"{distribution}-{version}"
    pax = b"".join(
        pax_record_of(keyword, value)
        for keyword, value in (
            ("GNU.sparse.major", "1"),
            ("GNU.sparse.minor", "0"),
            ("GNU.sparse.name", f"{root}/sparse"),
            ("GNU.sparse.realsize", "0"),
        )
    )
    head = f"{map_entries}\n".encode()
    listed = 2 * map_entries * 2  # "0\n" for each offset and each size
    data_size = len(head) + listed
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    before = (
        tar_header("pax", len(pax), tarfile.XHDTYPE)
        + pax
        + b"\0" * (-len(pax) % tarfile.BLOCKSIZE)
        + tar_header(f"{root}/GNUSparseFile.0/sparse", data_size)
        + head
    )
    after = (
        b"\0" * (-data_size % tarfile.BLOCKSIZE)
        + _tar_member(f"{root}/PKG-INFO", pkg_info)
        + b"\0" * (2 * tarfile.BLOCKSIZE)
    )
    path = directory / f"{root}.tar.gz"
    path.write_bytes(gzip.compress(before) + _zero_lines(listed) + gzip.compress(after))
    return path


_ZERO_LINES_MEMBER = gzip.compress(b"0\n" * (MiB // 2), compresslevel=9, mtime=0)


def _zero_lines(size: int) -> bytes:
    """``size`` bytes (even) of ``"0\n"`` lines as gzip members, a MiB each but the last."""
    whole, rest = divmod(size, MiB)
    return _ZERO_LINES_MEMBER * whole + (gzip.compress(b"0\n" * (rest // 2)) if rest else b"")


def pax_record_of(keyword: str, value: str) -> bytes:
    """The pax record ``"<length> <keyword>=<value>\n"``."""
    body = f" {keyword}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def central_directory_bomb(size: int = 0, *, entries: int = 0) -> bytes:
    """A "zip" of nothing but central-directory entries (with short, distinct names), at
    least ``size`` bytes and ``entries`` entries of them, and an end record that points at
    them (its entry counts saturated at 65535, as the record has 16 bits for them)."""
    directory = bytearray()
    count = 0
    while len(directory) < size or count < entries:
        member = f"{count:x}".encode()
        directory += _CENTRAL_ENTRY.pack(
            b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, len(member), 0, 0, 0, 0, 0, 0
        )
        directory += member
        count += 1
    listed = min(count, 0xFFFF)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, listed, listed, len(directory), 0, 0)
    return bytes(directory) + end


_CENTRAL_ENTRY = struct.Struct("<4s4B4HL2L5H2L")


def wheel_with_members(directory: Path, name: str, version: str, members: int) -> Path:
    """A valid wheel of exactly ``members`` entries (the rest empty files)."""
    path = build_wheel(directory, name, version)
    with zipfile.ZipFile(path) as archive:
        present = len(archive.infolist())
    with zipfile.ZipFile(path, "a") as archive:
        for index in range(members - present):
            archive.writestr(f"{name.replace('-', '_')}/{index:x}", b"")
    return path


def sdist_with_members(directory: Path, name: str, version: str, members: int) -> Path:
    """A valid sdist of exactly ``members`` members: PKG-INFO and empty files."""
    root = f"{name.replace('-', '_')}-{version}"
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    blocks = bytearray(_tar_member(f"{root}/PKG-INFO", pkg_info))
    for index in range(members - 1):
        blocks += tar_header(f"{root}/{index:x}", 0)
    blocks += b"\0" * (2 * tarfile.BLOCKSIZE)
    path = directory / f"{root}.tar.gz"
    path.write_bytes(gzip.compress(bytes(blocks), compresslevel=1))
    return path


def central_directory_size(path: Path) -> int:
    """The central directory's size as the zip's end record (its last 22 bytes) states it."""
    end = path.read_bytes()[-22:]
    assert end[:4] == b"PK\x05\x06", "a zip without an archive comment"
    size: int = struct.unpack("<4s4H2LH", end)[5]
    return size


def wheel_with_central_directory(directory: Path, name: str, version: str, size: int) -> Path:
    """A valid wheel whose central directory is exactly ``size`` bytes: padded with empty
    files whose entries carry comments (up to 65535 bytes each, in the directory only)."""
    path = build_wheel(directory, name, version)
    padding = size - central_directory_size(path)
    names: list[str] = []
    while padding > 0:
        names.append(f"{name.replace('-', '_')}/pad{len(names)}")
        padding -= 46 + len(names[-1]) + 0xFFFF
    padding += 0xFFFF * len(names)  # what the comments must hold together
    if padding < 0:
        raise ValueError(f"cannot pad a central directory to {size} bytes")
    each, rest = divmod(padding, max(len(names), 1))
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        for index, member in enumerate(names):
            info = zipfile.ZipInfo(member)
            info.comment = b"c" * (each + (index < rest))
            archive.writestr(info, b"")
    assert central_directory_size(path) == size
    return path
