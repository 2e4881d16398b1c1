"""Hostile archives are refused in bounded memory, at each limit's exact edge (#11).

``tarfile`` reads a pax or GNU long-name header's whole payload into memory, and
``zipfile`` the whole central directory: each limit below is checked before that read, so
one byte under it is published and one byte over it is a clear 422 with nothing stored.
The archives are built by ``tests/distributions.py``, which ``bench/attacks.py`` uses at
full size; here the claimed sizes are real too (a gigabyte of zeros costs a megabyte).
"""

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from registry_tokens.packages.metadata import (
    MAX_CENTRAL_DIRECTORY_BYTES,
    MAX_EXTENDED_HEADER_BYTES,
    MAX_EXTENDED_HEADERS_TOTAL_BYTES,
    MAX_MEMBERS,
    MAX_UNCOMPRESSED_BYTES,
)
from tests.distributions import (
    build_wheel,
    central_directory_bomb,
    extended_header_sdist,
    pkg_info_member_bytes,
    sdist_of_zeros,
    sdist_with_members,
    sparse_sdist,
    wheel_with_central_directory,
    wheel_with_members,
)
from tests.harness import Seeder, Server, Tenant
from tests.package_helpers import admin_tenant, packages_path, publish, published
from tests.packages.test_packages_api import State, assert_error

GIB = 1024 * 1024 * 1024
EXTENDED_KINDS = {
    "pax": tarfile.XHDTYPE,
    "global pax": tarfile.XGLTYPE,
    "GNU long name": tarfile.GNUTYPE_LONGNAME,
}


@pytest.fixture
def owner(package_seeder: Seeder) -> Tenant:
    return admin_tenant(package_seeder)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    directory = tmp_path / "dist"
    directory.mkdir()
    return directory


def refused(client: httpx.Client, server: Server, owner: Tenant, path: Path, words: str) -> None:
    """Publishing ``path`` is a 422 saying ``words``, and nothing is stored."""
    before = State(client, server, owner)
    response = publish(client, owner.org, owner.registry, owner.tokens["rw"], path)
    assert_error(response, 422, words)
    before.assert_unchanged()


# --------------------------------------------------------------------------- tar


@pytest.mark.parametrize("kind", sorted(EXTENDED_KINDS))
def test_an_extended_tar_header_is_bounded_at_its_exact_edge(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path, kind: str
) -> None:
    header = EXTENDED_KINDS[kind]
    fits = extended_header_sdist(dist, "edge-fits", "1.0", [(header, MAX_EXTENDED_HEADER_BYTES)])
    body = published(package_client, owner.org, owner.registry, owner.tokens["rw"], fits)
    assert (body["name"], body["version"]) == ("edge-fits", "1.0")

    over = extended_header_sdist(
        dist, "edge-over", "1.0", [(header, MAX_EXTENDED_HEADER_BYTES + 1)]
    )
    refused(
        package_client,
        package_server,
        owner,
        over,
        f"header of {MAX_EXTENDED_HEADER_BYTES + 1} bytes (at most {MAX_EXTENDED_HEADER_BYTES})",
    )


@pytest.mark.parametrize("kind", ["pax", "GNU long name"])
def test_an_extended_tar_header_claiming_a_gigabyte_is_refused_before_it_is_read(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path, kind: str
) -> None:
    # The attack of #11: a 1 MB upload whose header announces (and holds) 1 GiB of zeros.
    bomb = extended_header_sdist(dist, "bomb", "1.0", [(EXTENDED_KINDS[kind], GIB)], zeros=True)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    refused(package_client, package_server, owner, bomb, f"header of {GIB} bytes")


@pytest.mark.parametrize(
    ("case", "fits", "over"),
    [
        (
            "pax headers",
            [(tarfile.XHDTYPE, MAX_EXTENDED_HEADER_BYTES)] * 512,
            [(tarfile.XHDTYPE, MAX_EXTENDED_HEADER_BYTES)] * 511
            + [(tarfile.XHDTYPE, MAX_EXTENDED_HEADER_BYTES - 13), (tarfile.XHDTYPE, 14)],
        ),
        (
            # Every member a pax header describes keeps a copy of the global headers before
            # it, so each pax header counts them again: 8192 + 256 * (8160 + 8192) = 4 MiB.
            "global and pax headers",
            [(tarfile.XGLTYPE, MAX_EXTENDED_HEADER_BYTES)] + [(tarfile.XHDTYPE, 8160)] * 256,
            [(tarfile.XGLTYPE, MAX_EXTENDED_HEADER_BYTES)]
            + [(tarfile.XHDTYPE, 8160)] * 255
            + [(tarfile.XHDTYPE, 8161)],
        ),
        (
            "GNU long names",
            [(tarfile.GNUTYPE_LONGNAME, MAX_EXTENDED_HEADER_BYTES)] * 512,
            [(tarfile.GNUTYPE_LONGNAME, MAX_EXTENDED_HEADER_BYTES)] * 511
            + [(tarfile.GNUTYPE_LONGNAME, MAX_EXTENDED_HEADER_BYTES - 100)]
            + [(tarfile.GNUTYPE_LONGNAME, 101)],
        ),
    ],
)
def test_an_sdists_extended_headers_are_bounded_in_all_at_the_exact_edge(
    package_server: Server,
    package_client: httpx.Client,
    owner: Tenant,
    dist: Path,
    case: str,
    fits: list[tuple[bytes, int]],
    over: list[tuple[bytes, int]],
) -> None:
    del case
    path = extended_header_sdist(dist, "total-fits", "1.0", fits)
    published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)
    refused(
        package_client,
        package_server,
        owner,
        extended_header_sdist(dist, "total-over", "1.0", over),
        f"more than {MAX_EXTENDED_HEADERS_TOTAL_BYTES} bytes in all",
    )


def test_an_sdist_is_bounded_once_uncompressed_at_the_exact_edge(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    # Counted: each header block, and each member's size, before tarfile reads past it.
    def room(name: str) -> int:
        return MAX_UNCOMPRESSED_BYTES - pkg_info_member_bytes(name, "1.0") - tarfile.BLOCKSIZE

    fits = sdist_of_zeros(dist, "zeros-fit", "1.0", room("zeros-fit"))
    published(package_client, owner.org, owner.registry, owner.tokens["rw"], fits)
    over = sdist_of_zeros(dist, "zeros-over", "1.0", room("zeros-over") + 1)
    refused(
        package_client,
        package_server,
        owner,
        over,
        f"too large once uncompressed (at most {MAX_UNCOMPRESSED_BYTES} bytes)",
    )


@pytest.mark.parametrize("entries", [3, 10**9])
def test_a_gnu_sparse_file_is_refused_before_its_map_is_read(
    package_server: Server,
    package_client: httpx.Client,
    owner: Tenant,
    dist: Path,
    entries: int,
) -> None:
    # Format 1.0 keeps the map in the file's data: tarfile would read 10**9 entries (4 GB
    # of "0\n" lines, 4 MB uploaded) into one list.
    path = sparse_sdist(dist, "sparse", "1.0", map_entries=entries)
    refused(package_client, package_server, owner, path, "sparse file")


def test_an_old_gnu_sparse_member_is_refused(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    path = dist / "sparse_old-1.0.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as archive:
        for name, kind in (
            ("sparse_old-1.0/PKG-INFO", tarfile.REGTYPE),
            ("sparse_old-1.0/holes", tarfile.GNUTYPE_SPARSE),
        ):
            data = b"Metadata-Version: 2.1\nName: sparse-old\nVersion: 1.0\n"
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(data)
            archive.addfile(info, io.BytesIO(data))
    refused(package_client, package_server, owner, path, "sparse file")


# --------------------------------------------------------------------------- zip


def test_a_wheels_central_directory_is_bounded_at_its_exact_edge(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    fits = wheel_with_central_directory(dist, "cd-fits", "1.0", MAX_CENTRAL_DIRECTORY_BYTES)
    body = published(package_client, owner.org, owner.registry, owner.tokens["rw"], fits)
    assert body["name"] == "cd-fits"
    over = wheel_with_central_directory(dist, "cd-over", "1.0", MAX_CENTRAL_DIRECTORY_BYTES + 1)
    refused(
        package_client,
        package_server,
        owner,
        over,
        f"central directory is {MAX_CENTRAL_DIRECTORY_BYTES + 1} bytes "
        f"(at most {MAX_CENTRAL_DIRECTORY_BYTES})",
    )


def test_a_zip_of_only_central_directory_entries_is_refused_before_it_is_parsed(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    # The attack of #11 at a fifth of its size: 20 MB of entries and nothing else.
    path = dist / "bomb-1.0-py3-none-any.whl"
    path.write_bytes(central_directory_bomb(20 * 1024 * 1024))
    refused(package_client, package_server, owner, path, "central directory is")


def test_a_wheel_has_at_most_max_members_entries_whatever_its_end_record_says(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    # The end record says 65535; zipfile would parse every entry the directory's size holds.
    path = dist / "many-1.0-py3-none-any.whl"
    path.write_bytes(central_directory_bomb(entries=MAX_MEMBERS + 1))
    refused(package_client, package_server, owner, path, f"too many files (at most {MAX_MEMBERS})")


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_the_member_limit_is_exact(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path, kind: str
) -> None:
    build = wheel_with_members if kind == "wheel" else sdist_with_members
    fits = build(dist, "members-fit", "1.0", MAX_MEMBERS)
    published(package_client, owner.org, owner.registry, owner.tokens["rw"], fits)
    over = build(dist, "members-over", "1.0", MAX_MEMBERS + 1)
    refused(
        package_client,
        package_server,
        owner,
        over,
        f"the {kind} has too many files (at most {MAX_MEMBERS})",
    )


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        ("symlink", stat.S_IFLNK | 0o777),
        ("character device", stat.S_IFCHR | 0o644),
        ("fifo", stat.S_IFIFO | 0o644),
    ],
)
def test_a_wheel_with_a_link_or_special_file_is_refused(
    package_server: Server,
    package_client: httpx.Client,
    owner: Tenant,
    dist: Path,
    kind: str,
    mode: int,
) -> None:
    del kind
    path = build_wheel(dist, "linked", "1.0")
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo("linked/passwd")
        info.create_system = 3  # Unix: external_attr's high 16 bits are the st_mode
        info.external_attr = mode << 16
        archive.writestr(info, "/etc/passwd")
    refused(package_client, package_server, owner, path, "link or special file: 'linked/passwd'")

    # An executable regular file is fine.
    fine = build_wheel(dist, "scripted", "1.0")
    with zipfile.ZipFile(fine, "a") as archive:
        info = zipfile.ZipInfo("scripted/run.sh")
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | 0o755) << 16
        archive.writestr(info, "#!/bin/sh\n")
    published(package_client, owner.org, owner.registry, owner.tokens["rw"], fine)


# --------------------------------------------------------------------------- the form


def test_a_publish_with_two_file_parts_is_refused(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    first = build_wheel(dist, "first-pkg", "1.0")
    second = build_wheel(dist, "second-pkg", "1.0")
    before = State(package_client, package_server, owner)
    response = package_client.post(
        packages_path(owner.org, owner.registry),
        headers=owner.auth(),
        files=[
            ("file", (first.name, first.read_bytes(), "application/octet-stream")),
            ("file", (second.name, second.read_bytes(), "application/octet-stream")),
        ],
    )
    assert_error(response, 422, "was sent 2 times")
    assert response.json()["errors"] == [{"field": "file", "code": "invalid"}]
    before.assert_unchanged()

    # A text field "file" beside the file part is two too.
    response = package_client.post(
        packages_path(owner.org, owner.registry),
        headers=owner.auth(),
        data={"file": "x"},
        files={"file": (first.name, first.read_bytes(), "application/octet-stream")},
    )
    assert_error(response, 422, "was sent 2 times")
    before.assert_unchanged()

    # A file and a presigned upload's package_url: neither is published.
    response = package_client.post(
        packages_path(owner.org, owner.registry),
        headers=owner.auth(),
        data={"package_url": f"{package_server.base_url}/uploads/packages/x/{first.name}"},
        files={"file": (first.name, first.read_bytes(), "application/octet-stream")},
    )
    assert_error(response, 422, "can't be sent with `file`")
    assert response.json()["errors"] == [{"field": "package_url", "code": "invalid"}]
    before.assert_unchanged()
