"""npm in process: every bad publish (npm's ``PUT`` and the Packages API's ``.tgz``) is a
clear 4xx that stores nothing, and the registry protocol's documents, errors and
credentials, on the real app and database.
"""

import base64
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry_tokens.packages.npm import client_setup, name_problem, tag_problem
from registry_tokens.registries.service import Ecosystem
from tests.harness import Clock, Seeder, Server, Tenant, in_process_server, unique
from tests.package_helpers import (
    admin_tenant,
    bearer,
    create_registry_token,
    packages_path,
    publish,
    tokens_path,
)
from tests.packages.test_packages_api import State, assert_error

INSTALL_V1 = "application/vnd.npm.install-v1+json"
UPLOAD_LIMIT = 8 * 1024


# --------------------------------------------------------------------------- tarballs


def member(
    name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = "/etc/passwd"
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def tgz(*members: tuple[tarfile.TarInfo, bytes], pax: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers=pax or {}
    ) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def manifest(name: str = "junk", version: str = "1.0.0", **extra: Any) -> bytes:
    return json.dumps({"name": name, "version": version, **extra}).encode()


def npm_tarball(name: str = "junk", version: str = "1.0.0", **extra: Any) -> bytes:
    return tgz(
        member("package/package.json", manifest(name, version, **extra)),
        member("package/index.js", b"module.exports = { VALUE: 1 };\n"),
    )


GOOD = manifest()


def sparse(pax: dict[str, str]) -> tuple[tarfile.TarInfo, bytes]:
    """A GNU sparse file in pax's spelling (``pax``: its format's keywords)."""
    info, data = member("package/GNUSparseFile.0/holes", b"1\n0\n0\n")
    info.pax_headers = {"GNU.sparse.name": "package/holes", **pax}
    return info, data


SPARSE_1_0 = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "0"}
SPARSE_0_1 = {"GNU.sparse.map": "0,0", "GNU.sparse.size": "0", "GNU.sparse.realsize": "0"}

# (tarball bytes, words the error must contain): refused through npm publish and the API.
BAD_TARBALLS: dict[str, tuple[bytes, str]] = {
    "random bytes": (b"not a tarball at all" * 10, "not a gzip"),
    "a gzip that is not a tar": (b"\x1f\x8b" + b"\x00" * 64, "tarball"),
    "no package/package.json": (tgz(member("package/index.js")), "no package/package.json"),
    "package.json elsewhere": (tgz(member("other/package.json", GOOD)), "no package/package.json"),
    "package.json not JSON": (tgz(member("package/package.json", b"{nope")), "not valid JSON"),
    "package.json not an object": (tgz(member("package/package.json", b"[1]")), "JSON object"),
    "package.json without version": (
        tgz(member("package/package.json", b'{"name": "junk"}')),
        "name and a version",
    ),
    "a name with capitals": (npm_tarball("Junk"), "capital letters"),
    "a name with special characters": (npm_tarball("ju(n)k"), "special characters"),
    "a name starting with a period": (npm_tarball(".junk"), "start with a period"),
    "a name starting with an underscore": (npm_tarball("_junk"), "start with an underscore"),
    "a name that is not URL-friendly": (npm_tarball("ju nk"), "URL-friendly"),
    "a scope that is not URL-friendly": (npm_tarball("@a b/junk"), "URL-friendly"),
    "a reserved name": (npm_tarball("node_modules"), "not a valid package name"),
    "a name too long": (npm_tarball("j" * 215), "214"),
    "a version that is not semver": (npm_tarball(version="1.0"), "SemVer"),
    "a version with a v": (npm_tarball(version="v1.0.0"), "SemVer"),
    "a version with leading zeros": (npm_tarball(version="01.0.0"), "SemVer"),
    "a member with ..": (
        tgz(member("package/package.json", GOOD), member("package/../../evil.js")),
        "unsafe path",
    ),
    "an absolute member": (
        tgz(member("package/package.json", GOOD), member("/etc/cron.d/evil")),
        "unsafe path",
    ),
    "a symlink": (
        tgz(member("package/package.json", GOOD), member("package/passwd", b"", tarfile.SYMTYPE)),
        "link",
    ),
    "a hard link": (
        tgz(member("package/package.json", GOOD), member("package/passwd", b"", tarfile.LNKTYPE)),
        "link",
    ),
    "a device": (
        tgz(member("package/package.json", GOOD), member("package/tty", b"", tarfile.CHRTYPE)),
        "special file",
    ),
    "a FIFO": (
        tgz(member("package/package.json", GOOD), member("package/fifo", b"", tarfile.FIFOTYPE)),
        "special file",
    ),
    "two package.json": (
        tgz(member("package/package.json", GOOD), member("package/package.json", manifest("x"))),
        "more than one",
    ),
    "a package.json over 1 MiB": (
        tgz(member("package/package.json", manifest(readme="x" * (1024 * 1024)))),
        "too large",
    ),
    "a sparse file (GNU format 1.0, its map in its data)": (
        tgz(member("package/package.json", GOOD), sparse(SPARSE_1_0)),
        "the tarball contains a sparse file",
    ),
    "a sparse file (GNU format 0.1, its map in pax)": (
        tgz(member("package/package.json", GOOD), sparse(SPARSE_0_1)),
        "the tarball contains a sparse file",
    ),
    "an old GNU sparse member": (
        tgz(member("package/package.json", GOOD), member("package/holes", b"", b"S")),
        "the tarball contains a sparse file",
    ),
    "an extended header over its bound": (
        tgz(member("package/package.json", GOOD), pax={"comment": "x" * 9000}),
        "the tarball has an extended",
    ),
}


def publish_document(
    name: str,
    version: str,
    tarball: bytes,
    *,
    tag: str = "latest",
    versions: dict[str, Any] | None = None,
    attachment: dict[str, Any] | None = None,
    dist: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``npm publish`` sends (libnpmpublish's document)."""
    filename = f"{name.rpartition('/')[2]}-{version}.tgz"
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    entry = {
        "name": name,
        "version": version,
        "_id": f"{name}@{version}",
        "dist": dist
        if dist is not None
        else {
            "integrity": integrity,
            "shasum": hashlib.sha1(tarball, usedforsecurity=False).hexdigest(),
            "tarball": f"http://ignored.example/{name}/-/{filename}",
        },
    }
    return {
        "_id": name,
        "name": name,
        "dist-tags": {tag: version},
        "versions": versions if versions is not None else {version: entry},
        "access": None,
        "_attachments": attachment
        if attachment is not None
        else {
            filename: {
                "content_type": "application/octet-stream",
                "data": base64.b64encode(tarball).decode(),
                "length": len(tarball),
            }
        },
    }


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def owner(package_seeder: Seeder) -> Tenant:
    """An admin tenant whose registry is a javascript one."""
    tenant = admin_tenant(package_seeder)
    registry = package_seeder.services.registries.create(
        tenant.org, "Node", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT
    )
    tenant.registry = registry.slug
    return tenant


def npm_path(tenant: Tenant, rest: str = "") -> str:
    return f"/{tenant.org}/{tenant.registry}/npm/{rest}"


def npm_publish(
    client: httpx.Client, tenant: Tenant, name: str, document: Any, secret: str | None = None
) -> httpx.Response:
    escaped = name.replace("/", "%2f")
    return client.put(
        npm_path(tenant, escaped),
        headers=bearer(secret or tenant.tokens["rw"]),
        content=json.dumps(document).encode(),
    )


def published(client: httpx.Client, tenant: Tenant, name: str, version: str, **extra: Any) -> bytes:
    tarball = npm_tarball(name, version, **extra)
    response = npm_publish(client, tenant, name, publish_document(name, version, tarball))
    assert response.status_code == 201, response.text
    return tarball


def assert_npm_error(response: httpx.Response, status: int, words: str = "") -> None:
    """The house's error, with ``error`` beside ``message``: what npm prints."""
    assert_error(response, status, words)
    assert response.json()["error"] == response.json()["message"]
    assert "www-authenticate" not in response.headers


@pytest.fixture
def small_limit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("small-npm-uploads")
    env = {
        "REGISTRY_TOKENS_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
        "REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(workdir / "packages"),
    }
    with in_process_server(workdir, env=env) as started:
        yield started


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("case", sorted(BAD_TARBALLS))
def test_a_bad_tarball_is_a_clear_422_through_npm_and_the_api_and_stores_nothing(
    package_server: Server, package_client: httpx.Client, owner: Tenant, case: str
) -> None:
    published(package_client, owner, "present", "1.0.0")  # so "unchanged" is not "empty"
    tarball, words = BAD_TARBALLS[case]
    before = State(package_client, package_server, owner)

    document = publish_document("junk", "1.0.0", tarball)
    assert_npm_error(npm_publish(package_client, owner, "junk", document), 422, words)
    before.assert_unchanged()

    api = publish(
        package_client,
        owner.org,
        owner.registry,
        owner.tokens["rw"],
        filename="junk-1.0.0.tgz",
        content=tarball,
    )
    assert_error(api, 422, words)
    before.assert_unchanged()


GOOD_TARBALL = npm_tarball()
BAD_DOCUMENTS: dict[str, tuple[str, Any, str]] = {
    "the document names another package": (
        "junk",
        {**publish_document("junk", "1.0.0", GOOD_TARBALL), "name": "other"},
        "names 'other'",
    ),
    "the tarball is another package": (
        "other",
        publish_document("other", "1.0.0", GOOD_TARBALL),
        "package.json is junk@1.0.0",
    ),
    "the tarball is another version": (
        "junk",
        publish_document("junk", "2.0.0", GOOD_TARBALL),
        "package.json is junk@1.0.0",
    ),
    "an invalid name in the URL": (
        "Junk",
        publish_document("Junk", "1.0.0", GOOD_TARBALL),
        "capital letters",
    ),
    "a version that is not semver": (
        "junk",
        publish_document("junk", "1.0", GOOD_TARBALL),
        "SemVer",
    ),
    "two versions": (
        "junk",
        publish_document("junk", "1.0.0", GOOD_TARBALL, versions={"1.0.0": {}, "1.0.1": {}}),
        "exactly one version",
    ),
    "no attachment": (
        "junk",
        publish_document("junk", "1.0.0", GOOD_TARBALL, attachment={}),
        "exactly one attachment",
    ),
    "an attachment that is not base64": (
        "junk",
        publish_document(
            "junk", "1.0.0", GOOD_TARBALL, attachment={"junk-1.0.0.tgz": {"data": "%%%%"}}
        ),
        "not base64",
    ),
    "an attachment of another length": (
        "junk",
        publish_document(
            "junk",
            "1.0.0",
            GOOD_TARBALL,
            attachment={
                "junk-1.0.0.tgz": {
                    "data": base64.b64encode(GOOD_TARBALL).decode(),
                    "length": len(GOOD_TARBALL) + 1,
                }
            },
        ),
        "as declared",
    ),
    "an integrity that is not the attachment's": (
        "junk",
        publish_document("junk", "1.0.0", GOOD_TARBALL, dist={"integrity": "sha512-AAAA"}),
        "dist.integrity",
    ),
    "a shasum that is not the attachment's": (
        "junk",
        publish_document("junk", "1.0.0", GOOD_TARBALL, dist={"shasum": "0" * 40}),
        "dist.shasum",
    ),
    "a dist-tag that is a range": (
        "junk",
        publish_document("junk", "1.0.0", GOOD_TARBALL, tag="1.x"),
        "SemVer range",
    ),
    "a document that is not an object": ("junk", [1, 2], "JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_DOCUMENTS))
def test_a_bad_publish_document_is_a_clear_422_and_stores_nothing(
    package_server: Server, package_client: httpx.Client, owner: Tenant, case: str
) -> None:
    published(package_client, owner, "present", "1.0.0")
    name, document, words = BAD_DOCUMENTS[case]
    before = State(package_client, package_server, owner)
    assert_npm_error(npm_publish(package_client, owner, name, document), 422, words)
    before.assert_unchanged()


def test_a_version_already_published_is_409_in_npms_words(
    package_server: Server, package_client: httpx.Client, owner: Tenant
) -> None:
    published(package_client, owner, "@acme/twice", "1.0.0")
    before = State(package_client, package_server, owner)
    again = npm_tarball("@acme/twice", "1.0.0", description="other bytes")
    response = npm_publish(
        package_client, owner, "@acme/twice", publish_document("@acme/twice", "1.0.0", again)
    )
    assert_npm_error(
        response, 409, "You cannot publish over the previously published versions: 1.0.0."
    )
    api = publish(
        package_client,
        owner.org,
        owner.registry,
        owner.tokens["rw"],
        filename="twice-1.0.0.tgz",
        content=again,
    )
    assert_error(api, 409, "previously published")
    before.assert_unchanged()


def test_malformed_json_and_wrong_files_are_4xx(
    package_server: Server, package_client: httpx.Client, owner: Tenant
) -> None:
    before = State(package_client, package_server, owner)
    broken = package_client.put(
        npm_path(owner, "junk"), headers=owner.auth(), content=b'{"name": "junk",'
    )
    assert_npm_error(broken, 400, "not valid JSON")
    wheel = publish(
        package_client,
        owner.org,
        owner.registry,
        owner.tokens["rw"],
        filename="junk-1.0-py3-none-any.whl",
        content=GOOD_TARBALL,
    )
    assert_error(wheel, 422, "only npm tarballs")
    before.assert_unchanged()


def test_a_publish_over_the_upload_limit_is_413(small_limit_server: Server) -> None:
    seeder = Seeder(small_limit_server)
    tenant = admin_tenant(seeder)
    registry = seeder.services.registries.create(
        tenant.org, "Node", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT
    )
    tenant.registry = registry.slug
    large = tgz(
        member("package/package.json", GOOD),
        member("package/blob.bin", hashlib.sha512(b"seed").digest() * 300),
    )
    large = large + bytes(UPLOAD_LIMIT)  # past the limit, whatever gzip made of it
    with small_limit_server.client(timeout=60) as client:
        before = State(client, small_limit_server, tenant)
        response = npm_publish(client, tenant, "junk", publish_document("junk", "1.0.0", large))
        assert response.status_code == 413, response.text
        assert response.json()["message"]
        before.assert_unchanged()
        # The same .tgz through the Packages API: 413 too, and nothing stored.
        api = publish(
            client,
            tenant.org,
            tenant.registry,
            tenant.tokens["rw"],
            filename="junk-1.0.0.tgz",
            content=large,
        )
        assert_error(api, 413)
        before.assert_unchanged()
        # The control: a .tgz within the limit is published by that same door.
        fits = publish(
            client,
            tenant.org,
            tenant.registry,
            tenant.tokens["rw"],
            filename="junk-1.0.0.tgz",
            content=npm_tarball(),
        )
        assert fits.status_code == 200, fits.text


def test_who_may_publish_and_read(
    package_server: Server, package_client: httpx.Client, package_seeder: Seeder, owner: Tenant
) -> None:
    published(package_client, owner, "guarded", "1.0.0")
    before = State(package_client, package_server, owner)
    document = publish_document("guarded", "1.0.1", npm_tarball("guarded", "1.0.1"))
    registry_token = create_registry_token(
        package_client, owner.org, owner.registry, owner.tokens["rw"]
    )["token"]
    reader = package_seeder.api_token(owner.email, ("read_packages",))
    stranger = admin_tenant(package_seeder)

    for secret, status in (
        (registry_token, 401),  # a registry token only installs
        ("bkua_" + "x" * 36, 401),
        (reader, 403),  # an API token without write_packages
        (stranger.tokens["rw"], 404),  # an API token of another organization
    ):
        response = npm_publish(package_client, owner, "guarded", document, secret)
        assert_npm_error(response, status)
        before.assert_unchanged()

    # Reads: the registry token and read_packages install; no one else learns anything.
    for secret in (registry_token, reader):
        assert (
            package_client.get(npm_path(owner, "guarded"), headers=bearer(secret)).status_code
            == 200
        )
    missing = npm_path(owner, "guarded").replace(owner.registry, "no-such-registry")
    for path in (npm_path(owner, "guarded"), missing, npm_path(owner, "-/ping")):
        for headers in ({}, bearer(stranger.tokens["rw"]), bearer("bkpt_nonsense")):
            response = package_client.get(path, headers=headers)
            assert_npm_error(response, 401, "_authToken")

    # A python registry is no npm registry, even to its own tokens.
    python = package_seeder.services.registries.create(owner.org, "Py", slug=unique("py"))
    python_token = create_registry_token(package_client, owner.org, python.slug, owner.tokens["rw"])
    path = f"/{owner.org}/{python.slug}/npm/guarded"
    assert_npm_error(package_client.get(path, headers=bearer(python_token["token"])), 404)
    assert_npm_error(
        package_client.put(path, headers=owner.auth(), content=json.dumps(document).encode()),
        422,
        "javascript",
    )


def test_lifecycle_rules_apply_to_npm_as_to_pip(
    package_server: Server, package_client: httpx.Client, owner: Tenant
) -> None:
    published(package_client, owner, "lifecycle", "1.0.0")
    path = npm_path(owner, "lifecycle")
    tokens = tokens_path(owner.org, owner.registry)

    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    expiring = package_client.post(
        tokens, headers=owner.auth(), json={"description": "soon", "expires_at": soon}
    ).json()
    fenced = package_client.post(
        tokens,
        headers=owner.auth(),
        json={"description": "fenced", "allowed_cidrs": ["10.0.0.0/8"]},
    ).json()
    assert package_client.get(path, headers=bearer(expiring["token"])).status_code == 200
    assert_npm_error(package_client.get(path, headers=bearer(fenced["token"])), 401)

    rotated = create_registry_token(package_client, owner.org, owner.registry, owner.tokens["rw"])
    answer = package_client.post(
        f"{tokens}/{rotated['id']}/rotate", headers=owner.auth(), json={"grace_period_seconds": 0}
    )
    assert answer.status_code == 200, answer.text
    assert_npm_error(package_client.get(path, headers=bearer(rotated["token"])), 401)
    assert package_client.get(path, headers=bearer(answer.json()["token"])).status_code == 200

    time.sleep(max(0.0, (datetime.fromisoformat(soon) - datetime.now(UTC)).total_seconds()) + 0.1)
    assert_npm_error(package_client.get(path, headers=bearer(expiring["token"])), 401)

    # Each refusal is recorded in the audit log, with its reason (moments later).
    wanted = {"expired", "ip_not_allowed", "rotated_out"}
    reasons: set[str] = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not wanted <= reasons:
        events = package_client.get(
            f"/v2/packages/organizations/{owner.org}/audit-events",
            headers=owner.auth(),
            params={"event_type": "REGISTRY_TOKEN_USE_REFUSED"},
        ).json()
        items = events["items"] if isinstance(events, dict) else events
        reasons = {item["data"]["reason"] for item in items}
        time.sleep(0.2)
    assert wanted <= reasons


def test_a_public_javascript_registry_installs_without_any_token(
    package_client: httpx.Client, package_seeder: Seeder, owner: Tenant
) -> None:
    registry = package_seeder.services.registries.create(
        owner.org, "Open", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT, public=True
    )
    private = owner.registry
    owner.registry = registry.slug
    tarball = published(package_client, owner, "@acme/open", "1.0.0")
    for spelled in ("@acme/open", "@acme%2fopen"):
        for accept in ({}, {"Accept": INSTALL_V1}):
            document = package_client.get(npm_path(owner, spelled), headers=accept)
            assert document.status_code == 200, document.text
            assert "authorization" not in document.request.headers
            assert document.json()["dist-tags"] == {"latest": "1.0.0"}
    url = document.json()["versions"]["1.0.0"]["dist"]["tarball"]
    downloaded = package_client.get(url)
    assert downloaded.status_code == 200, downloaded.text
    assert "authorization" not in downloaded.request.headers
    assert downloaded.content == tarball
    # Public is for installing: publishing still needs a token that may write.
    sent = publish_document("@acme/open", "1.0.1", npm_tarball("@acme/open", "1.0.1"))
    anonymous = package_client.put(
        npm_path(owner, "@acme%2fopen"), content=json.dumps(sent).encode()
    )
    assert_npm_error(anonymous, 401)
    # The control: the same request of a private registry's package is refused.
    owner.registry = private
    published(package_client, owner, "@acme/closed", "1.0.0")
    assert_npm_error(package_client.get(npm_path(owner, "@acme/closed")), 401, "_authToken")


def test_a_rotated_tokens_old_secret_installs_with_npm_until_its_grace_ends(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with in_process_server(
        tmp_path,
        env={"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(tmp_path / "packages")},
        clock=clock,
    ) as server:
        seeder = Seeder(server)
        tenant = admin_tenant(seeder)
        tenant.registry = seeder.services.registries.create(
            tenant.org, "Node", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT
        ).slug
        with server.client() as client:
            tarball = published(client, tenant, "graced", "1.0.0")
            token = create_registry_token(client, tenant.org, tenant.registry, tenant.tokens["rw"])
            rotated = client.post(
                f"{tokens_path(tenant.org, tenant.registry)}/{token['id']}/rotate",
                headers=tenant.auth(),
                json={"grace_period_seconds": 300},
            )
            assert rotated.status_code == 200, rotated.text
            old, new = token["token"], rotated.json()["token"]
            packument = npm_path(tenant, "graced")
            tarball_url = npm_path(tenant, "graced/-/graced-1.0.0.tgz")

            def installs(secret: str) -> bool:
                document = client.get(packument, headers=bearer(secret))
                if document.status_code == 401:
                    assert_npm_error(document, 401, "_authToken")
                    return False
                assert document.status_code == 200, document.text
                downloaded = client.get(tarball_url, headers=bearer(secret))
                assert downloaded.status_code == 200, downloaded.text
                assert downloaded.content == tarball
                return True

            retired_at = clock.now
            for moment in (retired_at, retired_at + timedelta(seconds=300, milliseconds=-1)):
                clock.now = moment
                assert installs(old), moment
                assert installs(new), moment
            clock.now = retired_at + timedelta(seconds=300)
            assert not installs(old)
            assert installs(new)


# --------------------------------------------------------------------------- documents


def test_packuments_full_and_abbreviated_plain_and_scoped(
    package_server: Server, package_client: httpx.Client, owner: Tenant
) -> None:
    for name in ("plain-doc", "@acme/scoped-doc"):
        sent = published(package_client, owner, name, "1.0.0", dependencies={"left-pad": "^1.0.0"})
        published(
            package_client,
            owner,
            name,
            "1.1.0",
            description="second",
            scripts={"postinstall": "node x.js"},
        )
        auth = owner.auth()
        spellings = [name] if "/" not in name else [name, name.replace("/", "%2f")]
        for spelled in spellings:
            full = package_client.get(npm_path(owner, spelled), headers=auth)
            assert full.status_code == 200, full.text
            document = full.json()
            assert document["name"] == name
            assert document["dist-tags"] == {"latest": "1.1.0"}
            assert document["description"] == "second"
            assert set(document["versions"]) == {"1.0.0", "1.1.0"}
            assert {"created", "modified", "1.0.0", "1.1.0"} <= set(document["time"])
            first = document["versions"]["1.0.0"]
            assert first["dependencies"] == {"left-pad": "^1.0.0"}
            assert first["_id"] == f"{name}@1.0.0"

            tarball_url = first["dist"]["tarball"]
            basename = name.rpartition("/")[2]
            assert tarball_url.endswith(f"/npm/{name}/-/{basename}-1.0.0.tgz")
            downloaded = package_client.get(tarball_url, headers=auth)
            assert downloaded.status_code == 200
            assert downloaded.content == sent
            body = downloaded.content
            expected = "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode()
            assert first["dist"]["integrity"] == expected
            assert first["dist"]["shasum"] == hashlib.sha1(body, usedforsecurity=False).hexdigest()

            short = package_client.get(
                npm_path(owner, spelled), headers={**auth, "Accept": INSTALL_V1}
            )
            assert short.headers["content-type"].startswith(INSTALL_V1)
            corgi = short.json()
            assert set(corgi) == {"name", "modified", "dist-tags", "versions"}
            assert corgi["versions"]["1.1.0"]["hasInstallScript"] is True
            assert "scripts" not in corgi["versions"]["1.1.0"]
            assert corgi["versions"]["1.0.0"]["dist"] == first["dist"]

    missing = package_client.get(npm_path(owner, "no-such-package"), headers=owner.auth())
    assert_npm_error(missing, 404)
    wrong_file = package_client.get(
        npm_path(owner, "plain-doc/-/plain-doc-9.9.9.tgz"), headers=owner.auth()
    )
    assert_npm_error(wrong_file, 404)


def test_dist_tags_and_a_deleted_version(
    package_server: Server, package_client: httpx.Client, owner: Tenant
) -> None:
    name = "@acme/tagged"
    for version in ("1.0.0", "2.0.0"):
        published(package_client, owner, name, version)
    tags = npm_path(owner, f"-/package/{name.replace('/', '%2f')}/dist-tags")
    assert package_client.get(tags, headers=owner.auth()).json() == {"latest": "2.0.0"}

    added = package_client.put(f"{tags}/stable", headers=owner.auth(), json="1.0.0")
    assert added.status_code == 201, added.text
    moved = package_client.put(f"{tags}/latest", headers=owner.auth(), json="1.0.0")
    assert moved.status_code == 201, moved.text
    assert package_client.get(tags, headers=owner.auth()).json() == {
        "latest": "1.0.0",
        "stable": "1.0.0",
    }
    attempts: list[tuple[str, object, int, str]] = [
        ("stable", "9.9.9", 404, "version 9.9.9"),
        ("stable", 1, 422, "JSON string"),
        ("2.x", "1.0.0", 422, "SemVer range"),
    ]
    for tag, body, status, words in attempts:
        response = package_client.put(f"{tags}/{tag}", headers=owner.auth(), json=body)
        assert_npm_error(response, status, words)
    assert_npm_error(package_client.delete(f"{tags}/latest", headers=owner.auth()), 422, "latest")
    assert_npm_error(package_client.delete(f"{tags}/nope", headers=owner.auth()), 404)
    assert package_client.delete(f"{tags}/stable", headers=owner.auth()).status_code == 200

    # Deleting the version latest names (Packages API) takes the tag with it: latest is
    # then the highest release left.
    listed = package_client.get(packages_path(owner.org, owner.registry), headers=owner.auth())
    [one] = [item for item in listed.json()["items"] if item["version"] == "1.0.0"]
    deleted = package_client.delete(
        f"{packages_path(owner.org, owner.registry)}/{one['id']}", headers=owner.auth()
    )
    assert deleted.status_code == 200
    assert package_client.get(tags, headers=owner.auth()).json() == {"latest": "2.0.0"}


def test_whoami_names_the_caller(package_client: httpx.Client, owner: Tenant) -> None:
    registry_token = create_registry_token(
        package_client, owner.org, owner.registry, owner.tokens["rw"]
    )["token"]
    whoami = npm_path(owner, "-/whoami")
    assert package_client.get(whoami, headers=bearer(registry_token)).json() == {
        "username": "buildkite"
    }
    assert package_client.get(whoami, headers=owner.auth()).json() == {"username": owner.email}
    assert package_client.get(npm_path(owner, "-/ping"), headers=owner.auth()).json() == {}


# --------------------------------------------------------------------------- rules


def test_npm_name_and_tag_rules() -> None:
    for good in ("a", "left-pad", "@acme/x", "@a-b/c.d_e", "x" * 214):
        assert name_problem(good) is None, good
    for bad in ("", "A", "@acme/X", "x" * 215, "@acme/", "a/b", "ä", "favicon.ico", " x"):
        assert name_problem(bad) is not None, bad
    for good in ("latest", "next", "beta-2"):
        assert tag_problem(good) is None
    for bad in ("1", "v1", "1.x", "x", "", "a b", "^1"):
        assert tag_problem(bad) is not None, bad


def test_the_npmrc_the_console_shows() -> None:
    setup = client_setup("http://127.0.0.1:8080/acme/js/npm")
    assert setup.registry_url == "http://127.0.0.1:8080/acme/js/npm/"
    assert setup.npmrc == [
        "registry=http://127.0.0.1:8080/acme/js/npm/",
        "//127.0.0.1:8080/acme/js/npm/:_authToken=${REGISTRY_TOKEN}",
    ]
    scoped = client_setup("https://p.example/o/r/npm/", token="bkpt_x", scope="@acme")
    assert scoped.npmrc[0] == "@acme:registry=https://p.example/o/r/npm/"
    assert scoped.npmrc[1] == "//p.example/o/r/npm/:_authToken=bkpt_x"


def test_the_packages_api_lists_gets_copies_and_deletes_npm_packages(
    package_server: Server, package_client: httpx.Client, package_seeder: Seeder, owner: Tenant
) -> None:
    # A lone surrogate is valid JSON but not UTF-8: stored and served escaped, never a 500.
    published(package_client, owner, "under_score", "1.0.0", description="odd \ud800 text")
    base = packages_path(owner.org, owner.registry)
    listed = package_client.get(base, headers=owner.auth(), params={"name": "under_score"})
    [item] = listed.json()["items"]
    assert (item["name"], item["version"]) == ("under_score", "1.0.0")
    assert item["metadata"]["filename"] == "under_score-1.0.0.tgz"
    assert item["metadata"]["packagetype"] == "npm"
    assert item["variant"] is None
    fetched = package_client.get(item["url"], headers=owner.auth())
    assert fetched.json() == item
    document = package_client.get(npm_path(owner, "under_score"), headers=owner.auth())
    assert document.status_code == 200, document.text
    assert document.json()["versions"]["1.0.0"]["description"] == "odd \ud800 text"

    # pip's door shows nothing of a javascript registry.
    simple = package_client.get(f"/{owner.org}/{owner.registry}/pypi/simple/", headers=owner.auth())
    assert simple.status_code == 404

    # A copy into another javascript registry installs there; its latest is the release.
    other = package_seeder.services.registries.create(
        owner.org, "Node copy", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT
    )
    copied = package_client.post(
        f"{base}/{item['id']}/copy", headers=owner.auth(), params={"to": other.slug}
    )
    assert copied.status_code == 200, copied.text
    there = package_client.get(
        f"/{owner.org}/{other.slug}/npm/under_score", headers=owner.auth()
    ).json()
    assert there["dist-tags"] == {"latest": "1.0.0"}
    assert f"/{other.slug}/npm/under_score/-/" in there["versions"]["1.0.0"]["dist"]["tarball"]
    again = package_client.post(
        f"{base}/{item['id']}/copy", headers=owner.auth(), params={"to": other.slug}
    )
    assert_error(again, 409)

    deleted = package_client.delete(item["url"], headers=owner.auth())
    assert deleted.status_code == 200
    gone = package_client.get(npm_path(owner, "under_score"), headers=owner.auth())
    assert_npm_error(gone, 404)


def test_a_presigned_upload_of_a_tgz_publishes_it(
    package_client: httpx.Client, owner: Tenant
) -> None:
    """go-buildkite's ``PackagesService.Create`` flow: presign, post the file, finalize."""
    base = packages_path(owner.org, owner.registry)
    presigned = package_client.post(f"{base}/upload", headers=owner.auth())
    assert presigned.status_code == 200, presigned.text
    form = presigned.json()["form"]
    filename = "presigned-1.2.3.tgz"
    posted = package_client.post(
        form["url"],
        data=form["data"],
        files={form["file_input"]: (filename, npm_tarball("presigned", "1.2.3"))},
    )
    assert posted.status_code == 204, posted.text
    package_url = f"{form['url']}/{form['data']['key'].replace('${filename}', filename)}"
    finalized = package_client.post(
        base, headers=owner.auth(), files={"package_url": (None, package_url)}
    )
    assert finalized.status_code == 200, finalized.text
    assert (finalized.json()["name"], finalized.json()["version"]) == ("presigned", "1.2.3")
    document = package_client.get(npm_path(owner, "presigned"), headers=owner.auth()).json()
    assert document["dist-tags"] == {"latest": "1.2.3"}
    assert "shasum" in document["versions"]["1.2.3"]["dist"]
