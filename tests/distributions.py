"""Building real, small Python distributions in tests (no network, no build backend)."""

import base64
import hashlib
import io
import tarfile
import zipfile
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
