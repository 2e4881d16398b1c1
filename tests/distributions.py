"""Building real, small Python distributions in tests (no network, no build backend)."""

import base64
import gzip
import hashlib
import io
import struct
import tarfile
import zipfile
from collections.abc import Iterable
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
) -> Path:
    """A pure-Python wheel whose module ``module`` holds ``VALUE = value``."""
    distribution = name.replace("-", "_")
    module = module or distribution.lower()
    dist_info = f"{distribution}-{version}.dist-info"
    files: dict[str, bytes] = {
        f"{module}/__init__.py": f"VALUE = {value!r}\n".encode(),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {metadata_name or name}\nVersion: {version}\n"
            "Requires-Python: >=3.8\n"
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
    *,
    kind: bytes,
    size: int,
    zeros: bool = False,
) -> Path:
    """An sdist whose first member comes after an extended header of type ``kind``
    (``tarfile.XHDTYPE``/``XGLTYPE``: pax; ``GNUTYPE_LONGNAME``: a long name) whose payload
    is ``size`` bytes: valid (a pax ``comment``, or a long name under the sdist's root) or,
    with ``zeros``, that many zero bytes, which is cheap at any size (see ``gzip_parts``)."""
    distribution = name.replace("-", "_")
    root = f"{distribution}-{version}"
    head = tar_header("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "pax", size, kind)
    padded = size + (-size % tarfile.BLOCKSIZE)
    payload: list[bytes | int]
    if zeros:
        payload = [padded]
    elif kind == tarfile.GNUTYPE_LONGNAME:
        long_name = f"{root}/{'a' * (size - len(root) - 2)}".encode()  # and its NUL
        payload = [long_name + b"\0" * (padded - len(long_name))]
    else:
        payload = [pax_record("comment", size) + b"\0" * (padded - size)]
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    tail = (
        _tar_member(f"{root}/README", b"described by the header before it\n")
        + _tar_member(f"{root}/PKG-INFO", pkg_info)
        + b"\0" * (2 * tarfile.BLOCKSIZE)
    )
    path = directory / f"{root}.tar.gz"
    path.write_bytes(gzip_parts([head, *payload, tail]))
    return path


def central_directory_bomb(size: int) -> bytes:
    """A "zip" of nothing but central-directory entries (with short, distinct names),
    about ``size`` bytes of them, and the end record that points at them."""
    entries = bytearray()
    count = 0
    while len(entries) < size:
        member = f"{count:x}".encode()
        entries += (
            struct.pack(
                "<4s4B4HL2L5H2L",
                b"PK\x01\x02",
                20,
                3,
                20,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                len(member),
                0,
                0,
                0,
                0,
                0,
                0,
            )
            + member
        )
        count += 1
    end = struct.pack(
        "<4s4H2LH",
        b"PK\x05\x06",
        0,
        0,
        min(count, 0xFFFF),
        min(count, 0xFFFF),
        len(entries),
        0,
        0,
    )
    return bytes(entries) + end


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
    names = []
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
