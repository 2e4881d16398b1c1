"""The Packages API for Python registries: publish, list, get, delete, and every bad upload.

A refused upload must leave nothing behind: the API lists the same packages as before and
the server's package directory holds the same files (its staging area included).
"""

import hashlib
import io
import os
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from registry_tokens.registries.service import Ecosystem
from tests.distributions import build_sdist, build_wheel
from tests.harness import Seeder, Server, Tenant, in_process_server, unique
from tests.package_helpers import (
    ALL_REGISTRY_SCOPES,
    admin_tenant,
    basic,
    bearer,
    create_registry_token,
    list_all_packages,
    package_file,
    packages_path,
    publish,
    published,
    simple_path,
    stored,
)
from tests.registries.test_registries_api import REGISTRY_KEYS
from tests.registry_tokens.test_seed_contract import assert_uuid7_matches

PACKAGE_KEYS = [
    "id",
    "url",
    "web_url",
    "name",
    "created_at",
    "version",
    "variant",
    "metadata",
    "digests",
    "organization",
    "registry",
]
# Buildkite's package embeds the whole registry, and the organization with its graphql_id.
ORG_KEYS = ["id", "graphql_id", "slug", "url", "web_url"]
UPLOAD_LIMIT = 8 * 1024


# --------------------------------------------------------------------------- archives


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_gz_bytes(members: list[tarfile.TarInfo], payload: bytes = b"x") -> bytes:
    """A gzipped tar of ``members``; regular files hold ``payload``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info in members:
            if info.isfile():
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def tar_file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def tar_link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def metadata(name: str | None = "junk", version: str | None = "1.0") -> bytes:
    lines = ["Metadata-Version: 2.1"]
    if name is not None:
        lines.append(f"Name: {name}")
    if version is not None:
        lines.append(f"Version: {version}")
    return ("\n".join(lines) + "\n").encode()


def junk_wheel(extra: dict[str, bytes] | None = None, meta: bytes | None = None) -> bytes:
    """The members of a wheel ``junk-1.0``, with a METADATA of one's choosing."""
    members = {"junk/__init__.py": b"VALUE = 1\n", **(extra or {})}
    if meta is not None:
        members["junk-1.0.dist-info/METADATA"] = meta
    return zip_bytes(members)


def junk_sdist(*extra: tarfile.TarInfo, pkg_info: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        if pkg_info is not None:
            info = tarfile.TarInfo("junk-1.0/PKG-INFO")
            info.size = len(pkg_info)
            archive.addfile(info, io.BytesIO(pkg_info))
        for member in extra:
            if member.isfile():
                member.size = 1
                archive.addfile(member, io.BytesIO(b"x"))
            else:
                archive.addfile(member)
    return buffer.getvalue()


WHEEL = "junk-1.0-py3-none-any.whl"
SDIST = "junk-1.0.tar.gz"
GOOD_META = metadata()

# (file name, content, words the error message must contain)
BAD_UPLOADS: dict[str, tuple[str, bytes, str]] = {
    "random bytes as a wheel": (WHEEL, os.urandom(2048), "not a valid wheel"),
    "random bytes as an sdist": (SDIST, os.urandom(2048), "not a valid sdist"),
    "an empty wheel": (WHEEL, b"", "wheel"),
    "a gzip that is not a tar": (SDIST, b"\x1f\x8b" + os.urandom(64), "sdist"),
    "a zip without METADATA": (WHEEL, junk_wheel(), "METADATA"),
    "a wheel with two METADATA": (
        WHEEL,
        junk_wheel({"other-1.0.dist-info/METADATA": GOOD_META}, GOOD_META),
        "METADATA",
    ),
    "METADATA without Name": (WHEEL, junk_wheel(meta=metadata(name=None)), "Name"),
    "METADATA without Version": (WHEEL, junk_wheel(meta=metadata(version=None)), "Version"),
    "METADATA with an invalid version": (
        WHEEL,
        junk_wheel(meta=metadata(version="not a version")),
        "invalid version",
    ),
    "a wheel file name with an invalid version": (
        "junk-one.two-py3-none-any.whl",
        junk_wheel(meta=metadata(version="1.0")),
        "not a valid wheel file name",
    ),
    "an sdist without PKG-INFO": (SDIST, junk_sdist(tar_file("junk-1.0/setup.py")), "PKG-INFO"),
    "PKG-INFO without Version": (SDIST, junk_sdist(pkg_info=metadata(version=None)), "Version"),
    "a zip member ../evil.py": (
        WHEEL,
        junk_wheel({"../evil.py": b"import os\n"}, GOOD_META),
        "unsafe path",
    ),
    "a zip member deep in ..": (
        WHEEL,
        junk_wheel({"junk/../../evil.py": b"x"}, GOOD_META),
        "unsafe path",
    ),
    "an absolute zip member /etc/x": (
        WHEEL,
        junk_wheel({"/etc/x": b"x"}, GOOD_META),
        "unsafe path",
    ),
    "a Windows drive zip member": (
        WHEEL,
        junk_wheel({"C:/x.py": b"x"}, GOOD_META),
        "unsafe path",
    ),
    "a tar member with ..": (
        SDIST,
        junk_sdist(tar_file("junk-1.0/../../evil.py"), pkg_info=GOOD_META),
        "unsafe path",
    ),
    "an absolute tar member": (
        SDIST,
        junk_sdist(tar_file("/etc/cron.d/evil"), pkg_info=GOOD_META),
        "unsafe path",
    ),
    "a tar symlink": (
        SDIST,
        junk_sdist(tar_link("junk-1.0/passwd", "/etc/passwd", tarfile.SYMTYPE), pkg_info=GOOD_META),
        "link",
    ),
    "a tar hard link": (
        SDIST,
        junk_sdist(tar_link("junk-1.0/passwd", "/etc/passwd", tarfile.LNKTYPE), pkg_info=GOOD_META),
        "link",
    ),
    "a wrong extension": ("junk-1.0.exe", junk_wheel(meta=GOOD_META), "only wheels"),
    "a zip named .zip": ("junk-1.0.zip", junk_wheel(meta=GOOD_META), "only wheels"),
    "a path in the file name": (
        "../../junk-1.0-py3-none-any.whl",
        junk_wheel(meta=GOOD_META),
        "",
    ),
    "a wheel whose METADATA names another project": (
        WHEEL,
        junk_wheel(meta=metadata(name="other")),
        "does not match its metadata",
    ),
    "a wheel whose METADATA has another version": (
        WHEEL,
        junk_wheel(meta=metadata(version="2.0")),
        "does not match its metadata",
    ),
    "an sdist whose PKG-INFO names another project": (
        SDIST,
        junk_sdist(pkg_info=metadata(name="other")),
        "does not match its metadata",
    ),
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def owner(package_seeder: Seeder) -> Tenant:
    return admin_tenant(package_seeder)


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    directory = tmp_path / "dist"
    directory.mkdir()
    return directory


@pytest.fixture
def small_limit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("small-uploads")
    env = {
        "REGISTRY_TOKENS_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(workdir / "packages"),
    }
    with in_process_server(workdir, env=env) as started:
        yield started


class State:
    """What the API and the disk hold now, to compare with after a refused request."""

    def __init__(self, client: httpx.Client, server: Server, tenant: Tenant) -> None:
        self.client, self.server, self.tenant = client, server, tenant
        self.packages = self.listed()
        self.files = stored(server)

    def listed(self) -> list[dict[str, Any]]:
        return list_all_packages(
            self.client, self.tenant.org, self.tenant.registry, self.tenant.tokens["rw"]
        )

    def assert_unchanged(self) -> None:
        assert self.listed() == self.packages
        assert stored(self.server) == self.files


def assert_error(response: httpx.Response, status: int, words: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["message"]
    assert isinstance(message, str)
    assert message
    assert words.lower() in message.lower(), message


def assert_package_shape(body: dict[str, Any], tenant: Tenant, content: bytes) -> None:
    assert list(body) == PACKAGE_KEYS
    assert_uuid7_matches(body["id"], body["created_at"])
    assert body["digests"] == {
        "sha256": hashlib.sha256(content).hexdigest(),
        "sha512": hashlib.sha512(content).hexdigest(),
    }
    assert list(body["organization"]) == ORG_KEYS
    assert list(body["registry"]) == REGISTRY_KEYS
    assert body["organization"]["slug"] == tenant.org
    assert body["registry"]["slug"] == tenant.registry
    assert body["url"].endswith(f"{packages_path(tenant.org, tenant.registry)}/{body['id']}")
    assert body["web_url"].startswith("http://web.example.test/")


# --------------------------------------------------------------------------- publish


def test_publishing_a_wheel_reads_name_and_version_from_its_metadata(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    # The file name says hello_pkg 1.0; the metadata spells them "Hello.Pkg" and "1.0.0".
    built = build_wheel(dist, "hello-pkg", "1.0.0", metadata_name="Hello.Pkg")
    path = built.rename(dist / "hello_pkg-1.0-py3-none-any.whl")
    content = path.read_bytes()
    body = published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)
    assert (body["name"], body["version"]) == ("Hello.Pkg", "1.0.0")
    assert_package_shape(body, owner, content)
    stored = package_file(package_server, body["digests"]["sha256"], body["id"])
    assert stored.read_bytes() == content

    fetched = package_client.get(body["url"], headers=owner.auth())
    assert fetched.status_code == 200
    assert fetched.json() == body


def test_publishing_an_sdist(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    path = build_sdist(dist, "hello-pkg", "2.0rc1", metadata_name="Hello_Pkg")
    body = published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)
    assert (body["name"], body["version"]) == ("Hello_Pkg", "2.0rc1")
    assert_package_shape(body, owner, path.read_bytes())
    stored = package_file(package_server, body["digests"]["sha256"], body["id"])
    assert stored.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_a_bad_upload_is_a_clear_4xx_and_stores_nothing(
    package_server: Server,
    package_client: httpx.Client,
    owner: Tenant,
    dist: Path,
    case: str,
) -> None:
    # One good package already there, so "unchanged" is not "empty".
    published(
        package_client,
        owner.org,
        owner.registry,
        owner.tokens["rw"],
        build_wheel(dist, "present", "1.0"),
    )
    filename, content, words = BAD_UPLOADS[case]
    before = State(package_client, package_server, owner)
    response = publish(
        package_client,
        owner.org,
        owner.registry,
        owner.tokens["rw"],
        filename=filename,
        content=content,
    )
    assert_error(response, 422, words)
    before.assert_unchanged()


def test_a_name_and_version_already_published_is_409(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    wheel = build_wheel(dist, "hello-pkg", "1.0.0")
    sdist = build_sdist(dist, "hello-pkg", "1.0.0")
    for path in (wheel, sdist):  # a wheel and an sdist of one version: two files
        published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)
    before = State(package_client, package_server, owner)
    assert len(before.packages) == 2

    different = dist / "other"
    different.mkdir()
    rebuilt_wheel = build_wheel(different, "hello-pkg", "1.0.0", value="changed")
    rebuilt_sdist = build_sdist(different, "hello-pkg", "1.0.0", metadata_name="Hello-Pkg")
    attempts = [
        (wheel.name, wheel.read_bytes()),  # the same file again
        (wheel.name, rebuilt_wheel.read_bytes()),  # same name, other bytes
        (sdist.name, sdist.read_bytes()),
        (sdist.name, rebuilt_sdist.read_bytes()),
        # The same distribution under another spelling of its file name.
        ("hello_pkg-1.0-py3-none-any.whl", rebuilt_wheel.read_bytes()),
        ("Hello_Pkg-1.0.0-py3-none-any.whl", rebuilt_wheel.read_bytes()),
        ("hello_pkg-1.0.tar.gz", rebuilt_sdist.read_bytes()),
    ]
    for filename, content in attempts:
        response = publish(
            package_client,
            owner.org,
            owner.registry,
            owner.tokens["rw"],
            filename=filename,
            content=content,
        )
        assert_error(response, 409, "already published")
        before.assert_unchanged()

    # Another version, or another platform's wheel of the same version, is new.
    for built in (
        build_wheel(different, "hello-pkg", "1.0.1"),
        build_wheel(different, "hello-pkg", "1.0.0").rename(
            different / "hello_pkg-1.0.0-cp311-cp311-manylinux_2_17_x86_64.whl"
        ),
    ):
        published(package_client, owner.org, owner.registry, owner.tokens["rw"], built)


def test_a_publish_needs_the_file_field(
    package_server: Server, package_client: httpx.Client, owner: Tenant
) -> None:
    before = State(package_client, package_server, owner)
    path = packages_path(owner.org, owner.registry)
    attempts = [
        {"files": {"other": (WHEEL, junk_wheel(meta=GOOD_META))}},  # the file under another name
        {"data": {"file": "not a file"}, "files": {"x": ("x", b"x")}},  # a text field "file"
        {"data": {"file": "not a file"}},  # form-urlencoded
        {},  # no body at all
    ]
    for attempt in attempts:
        response = package_client.post(path, headers=owner.auth(), **attempt)  # type: ignore[arg-type]
        assert_error(response, 422, "multipart form field `file`")
        assert response.json()["errors"] == [{"field": "file", "code": "missing"}]
        before.assert_unchanged()
    # A body that is not multipart at all, though it says it is.
    broken = package_client.post(
        path,
        headers={**owner.auth(), "Content-Type": "multipart/form-data; boundary=zz"},
        content=b"garbage",
    )
    assert_error(broken, 400)
    before.assert_unchanged()


def test_publishing_to_a_registry_that_takes_no_such_file_is_422(
    package_server: Server,
    package_client: httpx.Client,
    package_seeder: Seeder,
    owner: Tenant,
    dist: Path,
) -> None:
    """Python registries take wheels and sdists, javascript ones npm tarballs (see
    ``test_npm_packages.py``), and the other ecosystems nothing yet."""
    files = stored(package_server)
    wheel = build_wheel(dist, "hello-pkg", "1.0.0")
    for ecosystem, words in ((Ecosystem.JAVASCRIPT, "npm tarballs"), (Ecosystem.RUBY, "python")):
        other = package_seeder.services.registries.create(
            owner.org, f"Other {ecosystem}", slug=unique("other"), ecosystem=ecosystem
        )
        response = publish(package_client, owner.org, other.slug, owner.tokens["rw"], wheel)
        assert_error(response, 422, words)
        listed = package_client.get(packages_path(owner.org, other.slug), headers=owner.auth())
        assert listed.status_code == 200
        assert listed.json()["items"] == []
        assert stored(package_server) == files


def test_a_file_over_the_upload_limit_is_413(small_limit_server: Server, tmp_path: Path) -> None:
    tenant = admin_tenant(Seeder(small_limit_server))
    fits = build_wheel(tmp_path, "small", "1.0")
    too_big = build_wheel(
        tmp_path, "large", "1.0", extra_members={"large/blob.bin": os.urandom(UPLOAD_LIMIT * 2)}
    )
    assert fits.stat().st_size < UPLOAD_LIMIT < too_big.stat().st_size
    with small_limit_server.client(timeout=60) as client:
        published(client, tenant.org, tenant.registry, tenant.tokens["rw"], fits)
        before = State(client, small_limit_server, tenant)
        declared = publish(client, tenant.org, tenant.registry, tenant.tokens["rw"], too_big)
        assert_error(declared, 413, "too large")
        before.assert_unchanged()

        # Without a Content-Length (chunked), the body is counted as it arrives.
        boundary = uuid.uuid4().hex
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{too_big.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        body = head + too_big.read_bytes() + f"\r\n--{boundary}--\r\n".encode()

        def chunks() -> Iterator[bytes]:
            for start in range(0, len(body), 1024):
                yield body[start : start + 1024]

        chunked = client.post(
            packages_path(tenant.org, tenant.registry),
            headers={
                **tenant.auth(),
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
            content=chunks(),
        )
        assert "content-length" not in chunked.request.headers
        assert_error(chunked, 413, "too large")
        before.assert_unchanged()


# --------------------------------------------------------------------------- list and get


def page_of(response: httpx.Response) -> tuple[list[str], dict[str, str | None]]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["items", "links"]
    return [item["id"] for item in body["items"]], body["links"]


def test_list_is_newest_first_filters_by_name_and_pages_with_cursors(
    package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    builds: list[Callable[[], Path]] = [
        lambda: build_wheel(dist, "alpha-pkg", "1.0"),
        lambda: build_wheel(dist, "beta-pkg", "1.0"),
        lambda: build_sdist(dist, "alpha-pkg", "1.1"),
        lambda: build_wheel(dist, "alpha-pkg", "1.1"),
        lambda: build_wheel(dist, "beta-pkg", "2.0"),
        lambda: build_sdist(dist, "gamma-pkg", "0.1"),
        lambda: build_wheel(dist, "alpha-pkg", "2.0"),
    ]
    bodies = [
        published(package_client, owner.org, owner.registry, owner.tokens["rw"], build())
        for build in builds
    ]
    newest_first = [body["id"] for body in reversed(bodies)]
    path = packages_path(owner.org, owner.registry)

    everything = package_client.get(path, headers=owner.auth())
    ids, links = page_of(everything)
    assert ids == newest_first
    assert links["next"] is None
    assert links["prev"] is None
    assert everything.json()["items"] == list(reversed(bodies))

    alphas = [body["id"] for body in reversed(bodies) if body["name"] == "alpha-pkg"]
    for spelling in ("alpha-pkg", "Alpha_Pkg", "ALPHA.PKG"):
        ids, _ = page_of(package_client.get(path, params={"name": spelling}, headers=owner.auth()))
        assert ids == alphas
    ids, links = page_of(package_client.get(path, params={"name": "nope"}, headers=owner.auth()))
    assert (ids, links["next"], links["prev"]) == ([], None, None)

    # Walk next to the end: every package exactly once, in order; then prev walks back.
    for per_page, name, expected in ((2, None, newest_first), (1, "alpha-pkg", alphas)):
        params: dict[str, str | int] = {"per_page": per_page, **({"name": name} if name else {})}
        url: str | None = str(package_client.build_request("GET", path, params=params).url)
        pages: list[list[str]] = []
        urls: list[str] = []
        while url is not None:
            assert len(pages) <= len(expected), "links.next never ends"
            ids, links = page_of(package_client.get(url, headers=owner.auth()))
            assert 1 <= len(ids) <= per_page
            if name is not None:
                assert parse_qs(urlsplit(url).query).get("name") == [name]
            pages.append(ids)
            urls.append(url)
            url = links["next"]
        assert [package for page in pages for package in page] == expected
        assert len(pages) == -(-len(expected) // per_page)
        for index in range(len(pages) - 1, 0, -1):
            _, links = page_of(package_client.get(urls[index], headers=owner.auth()))
            assert links["prev"] is not None
            ids, back = page_of(package_client.get(links["prev"], headers=owner.auth()))
            assert ids == pages[index - 1]
            assert back["next"] is not None
        _, first_links = page_of(package_client.get(urls[0], headers=owner.auth()))
        assert first_links["prev"] is None
        assert first_links["first"] is not None
        ids, _ = page_of(package_client.get(first_links["first"], headers=owner.auth()))
        assert ids == pages[0]


def test_get_finds_only_packages_of_the_registry(
    package_client: httpx.Client, package_seeder: Seeder, owner: Tenant, dist: Path
) -> None:
    body = published(
        package_client,
        owner.org,
        owner.registry,
        owner.tokens["rw"],
        build_wheel(dist, "hello-pkg", "1.0"),
    )
    path = packages_path(owner.org, owner.registry)
    fetched = package_client.get(f"{path}/{body['id']}", headers=owner.auth())
    assert fetched.status_code == 200
    assert fetched.json() == body

    other = package_seeder.services.registries.create(owner.org, "Other", slug=unique("reg"))
    for url in (
        f"{packages_path(owner.org, other.slug)}/{body['id']}",  # another registry's id
        f"{path}/{uuid.uuid4()}",
        f"{path}/not-a-uuid",
    ):
        missing = package_client.get(url, headers=owner.auth())
        assert_error(missing, 404, "No package found")
    # Someone outside the organization learns nothing, not even that the registry exists.
    stranger = package_seeder.tenant(scopes=ALL_REGISTRY_SCOPES)
    hidden = package_client.get(f"{path}/{body['id']}", headers=stranger.auth())
    assert hidden.status_code == 404


# --------------------------------------------------------------------------- delete


def test_delete_removes_the_package_its_file_and_its_install_link(
    package_server: Server, package_client: httpx.Client, owner: Tenant, dist: Path
) -> None:
    kept = published(
        package_client,
        owner.org,
        owner.registry,
        owner.tokens["rw"],
        build_wheel(dist, "hello-pkg", "1.0"),
    )
    doomed = published(
        package_client,
        owner.org,
        owner.registry,
        owner.tokens["rw"],
        build_wheel(dist, "hello-pkg", "2.0"),
    )
    token = create_registry_token(package_client, owner.org, owner.registry, owner.tokens["rw"])
    auth = basic(token["token"])
    project_url = f"{package_server.base_url}{simple_path(owner.org, owner.registry)}hello-pkg/"
    page = package_client.get(
        project_url, headers={**auth, "Accept": "application/vnd.pypi.simple.v1+json"}
    )
    links = {
        entry["filename"]: urljoin(project_url, entry["url"]) for entry in page.json()["files"]
    }
    doomed_url = links["hello_pkg-2.0-py3-none-any.whl"]
    assert package_client.get(doomed_url, headers=auth).status_code == 200
    doomed_file = package_file(package_server, doomed["digests"]["sha256"], doomed["id"])
    kept_file = package_file(package_server, kept["digests"]["sha256"], kept["id"])
    assert doomed_file.exists()

    deleted = package_client.delete(doomed["url"], headers=owner.auth())
    assert deleted.status_code == 200, deleted.text

    assert_error(package_client.get(doomed["url"], headers=owner.auth()), 404, "No package found")
    assert package_client.get(doomed_url, headers=auth).status_code == 404
    assert not doomed_file.exists()
    assert kept_file.exists()
    ids = [
        item["id"]
        for item in list_all_packages(package_client, owner.org, owner.registry, owner.tokens["rw"])
    ]
    assert ids == [kept["id"]]
    page = package_client.get(project_url, headers=auth)
    assert "hello_pkg-2.0" not in page.text
    assert "hello_pkg-1.0" in page.text
    again = package_client.delete(doomed["url"], headers=owner.auth())
    assert_error(again, 404, "No package found")

    # Once the last file goes, the project is gone from the index too.
    assert package_client.delete(kept["url"], headers=owner.auth()).status_code == 200
    assert package_client.get(project_url, headers=auth).status_code == 404
    assert not kept_file.exists()


# --------------------------------------------------------------------------- scopes


def test_each_operation_needs_its_scope(
    package_server: Server,
    package_client: httpx.Client,
    package_seeder: Seeder,
    dist: Path,
) -> None:
    tenant = package_seeder.tenant(scopes=ALL_REGISTRY_SCOPES)  # a member, not an admin
    org, registry = tenant.org, tenant.registry

    def token(*scopes: str) -> str:
        return package_seeder.api_token(tenant.email, scopes)

    def without(scope: str) -> str:
        return token(*(s for s in ALL_REGISTRY_SCOPES if s != scope))

    path = packages_path(org, registry)
    present = published(
        package_client, org, registry, token("write_packages"), build_wheel(dist, "present", "1.0")
    )
    before = State(package_client, package_server, tenant)
    wheel = build_wheel(dist, "new-pkg", "1.0")

    refused = publish(package_client, org, registry, without("write_packages"), wheel)
    assert refused.status_code == 403
    assert refused.json() == {"message": "Your access token doesn't have the write_packages scope"}
    non_reader = bearer(without("read_packages"))
    for url in (path, present["url"]):
        response = package_client.get(url, headers=non_reader)
        assert response.status_code == 403
        assert response.json() == {
            "message": "Your access token doesn't have the read_packages scope"
        }
    response = package_client.delete(present["url"], headers=bearer(without("delete_packages")))
    assert response.status_code == 403
    assert response.json() == {
        "message": "Your access token doesn't have the delete_packages scope"
    }
    before.assert_unchanged()

    # A registry token is for installing: the REST API refuses it, whatever it asks.
    registry_token = create_registry_token(package_client, org, registry, tenant.tokens["rw"])
    for secret_headers in (bearer(registry_token["token"]), {}):
        for response in (
            package_client.post(
                path, headers=secret_headers, files={"file": (wheel.name, wheel.read_bytes())}
            ),
            package_client.get(path, headers=secret_headers),
            package_client.get(present["url"], headers=secret_headers),
            package_client.delete(present["url"], headers=secret_headers),
        ):
            assert_error(response, 401)
    before.assert_unchanged()

    # Each scope alone is enough for its operation.
    assert package_client.get(path, headers=bearer(token("read_packages"))).status_code == 200
    fetched = package_client.get(present["url"], headers=bearer(token("read_packages")))
    assert fetched.json() == present
    published(package_client, org, registry, token("write_packages"), wheel)
    gone = package_client.delete(present["url"], headers=bearer(token("delete_packages")))
    assert gone.status_code == 200
