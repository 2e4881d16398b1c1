"""npm's rules, applied to what a publish brings: package names, SemVer versions,
dist-tags, the tarball's own ``package/package.json`` and npm's publish document.

The tarball is the truth. Its ``package/package.json`` names the package and its version;
the publish document (and the URL it was sent to) must agree with it, never the other way
round. The tarball is inspected, never extracted, under the same bounds as an sdist
(:func:`~registry_tokens.packages.metadata.safe_tar_members`: members, extended headers,
the decompressed size) and refused if it holds an unsafe path, a link, a device or a sparse
file, since ``npm install`` unpacks it into a project.
"""

import base64
import binascii
import hashlib
import json
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import semver

from registry_tokens.api.http import strict_json
from registry_tokens.packages.metadata import (
    MAX_METADATA_BYTES,
    BadDistribution,
    safe_tar_members,
)

NPM_KIND = "npm"
MANIFEST = "package/package.json"
# validate-npm-package-name's limits and words (npm's own check, applied to new packages).
MAX_NAME_LENGTH = 214
_RESERVED_NAMES = frozenset({"node_modules", "favicon.ico"})
_SCOPED = re.compile(r"@([^/]+)/([^/]+)")
# What encodeURIComponent leaves as it is: a name must be one of these characters only.
_URL_FRIENDLY = re.compile(r"[A-Za-z0-9\-_.!~*'()]+")
_SPECIAL = re.compile(r"[~'!()*]")
# node-semver's MAX_LENGTH: longer strings are not versions to npm.
MAX_VERSION_LENGTH = 256
# A dist-tag: a word npm would never read as a version or a range (``npm dist-tag add``
# refuses those: "Tag name must not be a valid SemVer range").
_TAG = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,127}")
_RANGE_LIKE = re.compile(r"[vV]?[0-9].*|[xX]")
# Base64 decoded this many characters at a time (a multiple of 4): bounded memory.
_BASE64_CHUNK = 4 * 1024 * 1024


class BadNpmPackage(BadDistribution):
    """A publish npm's rules refuse; the message says why, in npm's words where it has
    them."""


@dataclass(frozen=True)
class NpmTarball:
    """What an npm tarball says about itself."""

    name: str
    version: str
    manifest: str  # its package.json, as compact JSON text
    description: str | None

    @property
    def filename(self) -> str:
        """The name it is stored under: the whole package name (scope included), so two
        scopes' packages of one name never share it."""
        return f"{self.name}-{self.version}.tgz"


@dataclass(frozen=True)
class NpmPublish:
    """What npm's publish document (``PUT …/npm/{name}``) asks for, once checked."""

    name: str
    version: str
    tag: str
    attachment: str  # the tarball, base64
    length: int | None  # the attachment's declared length, if given
    integrity: str | None  # the version's ``dist.integrity`` as npm computed it
    shasum: str | None


def name_problem(name: str) -> str | None:
    """Why npm would refuse ``name`` for a new package (validate-npm-package-name's
    words), or ``None``."""
    if not name:
        return "name length must be greater than zero"
    if name.startswith("."):
        return "name cannot start with a period"
    if name.startswith("_"):
        return "name cannot start with an underscore"
    if name.strip() != name:
        return "name cannot contain leading or trailing spaces"
    if name.lower() in _RESERVED_NAMES:
        return f"{name} is not a valid package name"
    if len(name) > MAX_NAME_LENGTH:
        return f"name can no longer contain more than {MAX_NAME_LENGTH} characters"
    if name.lower() != name:
        return "name can no longer contain capital letters"
    scoped = _SCOPED.fullmatch(name)
    parts = [scoped[1], scoped[2]] if scoped else [name]
    if _SPECIAL.search(parts[-1]):
        return 'name can no longer contain special characters ("~\'!()*")'
    if not all(_URL_FRIENDLY.fullmatch(part) for part in parts):
        return "name can only contain URL-friendly characters"
    if scoped and parts[1].startswith((".", "_")):
        return "name cannot start with a period or an underscore after its scope"
    return None


def version_problem(version: str) -> str | None:
    """Why ``version`` is not a SemVer 2.0.0 version npm can publish, or ``None``."""
    if len(version) > MAX_VERSION_LENGTH or not semver.Version.is_valid(version):
        return f"{version[:80]!r} is not a valid SemVer version (such as 1.0.0)"
    return None


def tag_problem(tag: str) -> str | None:
    if _RANGE_LIKE.fullmatch(tag):
        return "Tag name must not be a valid SemVer range"
    if not _TAG.fullmatch(tag):
        return (
            f"{tag[:80]!r} is not a dist-tag: letters, digits, '.', '_' and '-', starting "
            "with a letter, at most 128 characters"
        )
    return None


def valid_name(name: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise BadNpmPackage(f"Invalid package name {name[:80]!r}: {problem}")
    return name


def valid_version(version: str) -> str:
    problem = version_problem(version)
    if problem is not None:
        raise BadNpmPackage(problem)
    return version


def valid_tag(tag: str) -> str:
    problem = tag_problem(tag)
    if problem is not None:
        raise BadNpmPackage(problem)
    return tag


def version_key(version: str) -> semver.Version:
    return semver.Version.parse(version)


def highest(versions: list[str]) -> str | None:
    """What ``latest`` means when no tag says: the highest release, else the highest
    prerelease."""
    parsed = sorted(versions, key=version_key)
    releases = [v for v in parsed if version_key(v).prerelease is None]
    candidates = releases or parsed
    return candidates[-1] if candidates else None


def integrity(sha512_hex: str) -> str:
    """npm's Subresource Integrity string for a file of this SHA-512."""
    return "sha512-" + base64.b64encode(bytes.fromhex(sha512_hex)).decode("ascii")


def file_sha1(path: Path) -> str:
    """``dist.shasum``: the file's SHA-1, read in chunks."""
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def read_tarball(path: Path) -> NpmTarball:
    """The name, version and package.json of the npm tarball at ``path``."""
    with path.open("rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            raise BadNpmPackage("the file is not a gzip-compressed tarball (.tgz)")
    try:
        raw = _manifest_bytes(path)
    except BadDistribution:
        raise
    except Exception as exc:
        # tarfile and zlib raise many things on hostile input: all are the client's fault.
        raise BadNpmPackage("the file cannot be read as a gzip-compressed tarball") from exc
    try:
        manifest = strict_json(raw)
    except json.JSONDecodeError as exc:
        raise BadNpmPackage(f"the tarball's {MANIFEST} is not valid JSON") from exc
    if not isinstance(manifest, dict):
        raise BadNpmPackage(f"the tarball's {MANIFEST} is not a JSON object")
    name, version = manifest.get("name"), manifest.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise BadNpmPackage(f"the tarball's {MANIFEST} does not declare a name and a version")
    valid_name(name)
    valid_version(version)
    description = manifest.get("description")
    kept = {key: value for key, value in manifest.items() if not key.startswith("_")}
    return NpmTarball(
        name=name,
        version=version,
        # ASCII: a lone surrogate (valid JSON, not valid UTF-8) is stored escaped.
        manifest=json.dumps(kept, separators=(",", ":")),
        description=description if isinstance(description, str) else None,
    )


def _manifest_bytes(path: Path) -> bytes:
    found: bytes | None = None
    try:
        for archive, member in safe_tar_members(path, "tarball"):
            if member.name.removeprefix("./") != MANIFEST or not member.isfile():
                continue
            if found is not None:  # tar keeps the last one; which would npm read?
                raise BadNpmPackage(f"the tarball has more than one {MANIFEST}")
            if member.size > MAX_METADATA_BYTES:
                raise BadNpmPackage(
                    f"the tarball's {MANIFEST} is too large (at most {MAX_METADATA_BYTES})"
                )
            extracted = archive.extractfile(member)
            found = extracted.read() if extracted is not None else b""
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadNpmPackage("the file is not a valid gzip-compressed tarball (.tgz)") from exc
    if found is None:
        raise BadNpmPackage(f"the tarball has no {MANIFEST}")
    return found


def read_publish(document: Any, url_name: str) -> NpmPublish:
    """npm's publish document, checked for its shape: one version, one attachment, one
    dist-tag, all naming the package the URL names."""
    valid_name(url_name)
    if not isinstance(document, dict):
        raise BadNpmPackage("the publish document must be a JSON object")
    if document.get("name") != url_name:
        raise BadNpmPackage(
            f"the publish document names {str(document.get('name'))[:80]!r}, "
            f"not {url_name!r} as its URL does"
        )
    versions = document.get("versions")
    attachments = document.get("_attachments")
    tags = document.get("dist-tags", {"latest": None})
    if not isinstance(versions, dict) or len(versions) != 1:
        raise BadNpmPackage("the publish document must hold exactly one version")
    if not isinstance(attachments, dict) or len(attachments) != 1:
        raise BadNpmPackage("the publish document must hold exactly one attachment (_attachments)")
    if not isinstance(tags, dict) or len(tags) != 1:
        raise BadNpmPackage("the publish document must name exactly one dist-tag")
    ((version, entry),) = versions.items()
    ((_filename, attachment),) = attachments.items()
    ((tag, tagged),) = tags.items()
    valid_version(version)
    valid_tag(tag)
    if tagged is not None and tagged != version:
        raise BadNpmPackage(f"the dist-tag {tag} names {tagged!r}, not the version published")
    data = attachment.get("data") if isinstance(attachment, dict) else None
    if not isinstance(data, str) or not data:
        raise BadNpmPackage("the attachment has no base64 data")
    length = attachment.get("length")
    dist = entry.get("dist") if isinstance(entry, dict) else None
    dist = dist if isinstance(dist, dict) else {}
    return NpmPublish(
        name=url_name,
        version=version,
        tag=tag,
        attachment=data,
        length=length if isinstance(length, int) and not isinstance(length, bool) else None,
        integrity=_text(dist.get("integrity")),
        shasum=_text(dist.get("shasum")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def decoded_chunks(data: str) -> Iterator[bytes]:
    """The attachment's bytes, a few MiB at a time (strict base64: nothing else in it)."""
    if len(data) % 4:
        raise BadNpmPackage("the attachment's data is not base64")
    for start in range(0, len(data), _BASE64_CHUNK):
        try:
            yield base64.b64decode(data[start : start + _BASE64_CHUNK], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadNpmPackage("the attachment's data is not base64") from exc


def tarball_file(name: str, version: str) -> str:
    """The file name in a version's ``dist.tarball`` URL, as npmjs spells it: the name
    without its scope."""
    return f"{name.rpartition('/')[2]}-{version}.tgz"


def stored_filename(name: str, url_file: str) -> str:
    """The stored file name behind a tarball URL's ``{name}/-/{file}``."""
    scope, slash, _ = name.rpartition("/")
    return f"{scope}{slash}{url_file}"


def packument_path(name: str) -> str:
    """A package's path under ``…/npm/``, as npm asks for it (the scope's ``/`` escaped)."""
    return quote(name, safe="@")


@dataclass(frozen=True)
class NpmSetup:
    """What a user writes and runs to use an npm registry: shown by the README and the
    console's registry page."""

    registry_url: str
    npmrc: list[str]
    install: str
    publish: str


# What ``.npmrc`` holds where the secret goes: npm reads it from the environment.
FROM_ENVIRONMENT = "${REGISTRY_TOKEN}"


def client_setup(
    registry_url: str, token: str = FROM_ENVIRONMENT, scope: str | None = None
) -> NpmSetup:
    """The ``.npmrc`` lines and commands for the registry served at ``registry_url``
    (``{API_URL}/{org}/{registry}/npm/``). A pure function: the console renders it for
    ``javascript`` registries. ``token`` is written where the secret goes (npm expands
    ``${VAR}`` from the environment, so the file itself need hold no secret)."""
    base = registry_url if registry_url.endswith("/") else registry_url + "/"
    without_scheme = base.split("://", 1)[-1]
    registry_line = f"{scope}:registry={base}" if scope else f"registry={base}"
    return NpmSetup(
        registry_url=base,
        npmrc=[registry_line, f"//{without_scheme}:_authToken={token}"],
        install="npm install <package>",
        publish=(
            f"npm publish --registry {base}   "
            "# with an API access token (write_packages) as _authToken"
        ),
    )


def describe_manifest(manifest: str | None) -> Mapping[str, Any]:
    """A stored package.json as a mapping (``{}`` when there is none)."""
    if not manifest:
        return {}
    loaded = json.loads(manifest)
    return loaded if isinstance(loaded, dict) else {}
