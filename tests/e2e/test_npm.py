"""End to end with the real npm CLI: publish with an API token, install with a registry token.

Every npm run has a HOME, a user config (``.npmrc``) and a cache of its own, and its
registry on the loopback, so nothing of this machine's npm setup is read or written and
each install fetches from our server. ``bin/npm-setup`` installs Node.js and npm where
they are missing; the tests are skipped only if even that could not provide them.
"""

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from registry_tokens.registries.service import Ecosystem
from tests.harness import Seeder, ServerProcess, Tenant, unique
from tests.package_helpers import (
    admin_tenant,
    bearer,
    create_registry_token,
    package_file,
    packages_path,
    tokens_path,
)

REPO = Path(__file__).resolve().parents[2]


def npm_binary() -> str | None:
    found = shutil.which("npm")
    if found is None and os.environ.get("REGISTRY_TOKENS_SKIP_NPM_SETUP") != "1":
        subprocess.run([str(REPO / "bin" / "npm-setup")], check=False, timeout=900)
        found = shutil.which("npm")
    return found


NPM = npm_binary()
pytestmark = pytest.mark.skipif(NPM is None, reason="npm is not installed (bin/npm-setup)")


# --------------------------------------------------------------------------- npm


@dataclass
class Npm:
    """One npm user: a home, a user config naming one registry and its token, a cache."""

    home: Path
    registry: str

    @property
    def userconfig(self) -> Path:
        return self.home / ".npmrc"

    def configure(self, token: str | None) -> None:
        host_path = self.registry.split("://", 1)[1]
        lines = [f"registry={self.registry}"]
        if token is not None:
            lines.append(f"//{host_path}:_authToken={token}")
        self.userconfig.write_text("\n".join(lines) + "\n")

    def run(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        assert NPM is not None
        env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config_")}
        env.update(HOME=str(self.home), NO_UPDATE_NOTIFIER="1", CI="true")
        return subprocess.run(
            [
                NPM,
                *args,
                "--registry",
                self.registry,
                "--userconfig",
                str(self.userconfig),
                "--cache",
                str(self.home / "cache"),
                "--no-audit",
                "--no-fund",
                "--update-notifier=false",
                "--fetch-retries=0",
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, output(result)
    return result


def refused(result: subprocess.CompletedProcess[str], status: int) -> str:
    """npm's failure, which must name the status (``npm error code E401``)."""
    everything = result.stdout + result.stderr
    assert result.returncode != 0, output(result)
    assert f"E{status}" in everything, output(result)
    return everything


def package_dir(root: Path, name: str, version: str, value: str) -> Path:
    """A package whose ``index.js`` exports a value unique to the test."""
    directory = root / f"src-{name.replace('/', '-')}-{version}"
    directory.mkdir(parents=True)
    (directory / "package.json").write_text(
        json.dumps({"name": name, "version": version, "main": "index.js", "license": "MIT"})
    )
    (directory / "index.js").write_text(f"module.exports = {{ VALUE: {json.dumps(value)} }};\n")
    return directory


def project_dir(root: Path, label: str) -> Path:
    directory = root / f"project-{label}"
    directory.mkdir(parents=True)
    (directory / "package.json").write_text(
        json.dumps({"name": f"consumer-{label}", "version": "1.0.0", "private": True})
    )
    return directory


def required_value(project: Path, name: str) -> str | None:
    node = shutil.which("node")
    assert node is not None
    result = subprocess.run(
        [node, "-e", f"console.log(require({json.dumps(name)}).VALUE)"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def installed_version(project: Path, name: str) -> str:
    manifest = json.loads((project / "node_modules" / name / "package.json").read_text())
    version: str = manifest["version"]
    return version


def npm_registry(server: ServerProcess, org: str, registry: str) -> str:
    return f"{server.base_url}/{org}/{registry}/npm/"


@dataclass
class World:
    server: ServerProcess
    client: httpx.Client
    owner: Tenant
    root: Path
    registry_url: str

    def npm(self, label: str, token: str | None) -> Npm:
        home = self.root / f"home-{label}-{uuid.uuid4().hex[:6]}"
        home.mkdir()
        npm = Npm(home, self.registry_url)
        npm.configure(token)
        return npm

    def registry_token(self) -> dict[str, Any]:
        return create_registry_token(
            self.client, self.owner.org, self.owner.registry, self.owner.tokens["rw"], "npm"
        )

    def publish(self, name: str, version: str, value: str, *extra: str) -> None:
        publisher = self.npm("publisher", self.owner.tokens["rw"])
        source = package_dir(self.root, name, version, value)
        result = ok(publisher.run(source, "publish", *extra))
        assert f"{name}@{version}" in result.stdout + result.stderr, output(result)


@pytest.fixture
def world(
    package_server: ServerProcess,
    package_client: httpx.Client,
    package_seeder: Seeder,
    tmp_path: Path,
) -> World:
    owner = admin_tenant(package_seeder)
    registry = package_seeder.services.registries.create(
        owner.org, "Node", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT
    )
    owner.registry = registry.slug
    assert urlsplit(package_server.base_url).hostname == "127.0.0.1"
    return World(
        package_server,
        package_client,
        owner,
        tmp_path,
        npm_registry(package_server, owner.org, registry.slug),
    )


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", ["hello-npm", "@acme/hello-npm"])
def test_publish_then_install_require_and_ci_with_a_registry_token(world: World, name: str) -> None:
    value = uuid.uuid4().hex
    world.publish(name, "1.0.0", value)

    # The Packages API lists what npm published, with the tarball's own name and version.
    listed = world.client.get(
        packages_path(world.owner.org, world.owner.registry), headers=world.owner.auth()
    )
    assert listed.status_code == 200, listed.text
    [package] = listed.json()["items"]
    assert (package["name"], package["version"]) == (name, "1.0.0")

    token = world.registry_token()["token"]
    installer = world.npm("installer", token)
    project = project_dir(world.root, "install")
    ok(installer.run(project, "install", name))
    assert required_value(project, name) == value
    lock = json.loads((project / "package-lock.json").read_text())
    locked = lock["packages"][f"node_modules/{name}"]
    assert locked["resolved"].startswith(world.registry_url)
    assert locked["integrity"].startswith("sha512-")

    # npm ci, from the lockfile alone, in a fresh project with a fresh cache.
    fresh = project_dir(world.root, "ci")
    for kept in ("package.json", "package-lock.json"):
        shutil.copy(project / kept, fresh / kept)
    ok(world.npm("ci", token).run(fresh, "ci"))
    assert required_value(fresh, name) == value

    # npm view, whoami and ping speak to the registry with the same token.
    viewed = ok(installer.run(project, "view", name, "--json"))
    view = json.loads(viewed.stdout)
    assert view["name"] == name
    assert view["dist-tags"]["latest"] == "1.0.0"
    assert view["dist"]["integrity"].startswith("sha512-")
    assert re.fullmatch(r"[0-9a-f]{40}", view["dist"]["shasum"])
    assert "1.0.0" in view["time"]
    assert ok(installer.run(project, "whoami")).stdout.strip() == "buildkite"
    ok(installer.run(project, "ping"))


def test_a_second_version_a_dist_tag_and_ranges(world: World) -> None:
    name = "@acme/ranges"
    values = {version: uuid.uuid4().hex for version in ("1.0.0", "1.1.0", "2.0.0")}
    for version, value in values.items():
        world.publish(name, version, value)
    world.publish(name, "3.0.0-beta.1", uuid.uuid4().hex, "--tag", "next")

    publisher = world.npm("tagger", world.owner.tokens["rw"])
    here = world.root
    ok(publisher.run(here, "dist-tag", "add", f"{name}@1.0.0", "stable"))
    tags = ok(publisher.run(here, "dist-tag", "ls", name)).stdout
    assert "latest: 2.0.0" in tags, tags  # latest followed the publishes, not --tag next
    assert "next: 3.0.0-beta.1" in tags, tags
    assert "stable: 1.0.0" in tags, tags

    token = world.registry_token()["token"]
    installer = world.npm("ranges", token)
    for spec, expected in (
        (f"{name}@^1", "1.1.0"),
        (f"{name}@stable", "1.0.0"),
        (name, "2.0.0"),
        (f"{name}@next", "3.0.0-beta.1"),
    ):
        project = project_dir(world.root, uuid.uuid4().hex[:8])
        ok(installer.run(project, "install", spec))
        assert installed_version(project, name) == expected, spec

    ok(publisher.run(here, "dist-tag", "rm", name, "stable"))
    assert "stable" not in ok(publisher.run(here, "dist-tag", "ls", name)).stdout
    # A registry token reads the tags, but cannot change them.
    refused(installer.run(here, "dist-tag", "add", f"{name}@1.0.0", "stable"), 401)


def test_npm_is_refused_without_a_token_that_may(world: World, package_seeder: Seeder) -> None:
    name = "refusals"
    world.publish(name, "1.0.0", "v")
    registry_token = world.registry_token()

    # No token at all.
    project = project_dir(world.root, "none")
    anonymous = refused(world.npm("anonymous", None).run(project, "install", name), 401)
    assert "registry token" in anonymous, anonymous  # the body's error, printed by npm

    # Another registry's live token.
    other = package_seeder.services.registries.create(
        world.owner.org, "Other", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT
    )
    foreign = create_registry_token(
        world.client, world.owner.org, other.slug, world.owner.tokens["rw"]
    )["token"]
    refused(world.npm("foreign", foreign).run(project, "install", name), 401)

    # A registry token can't publish; nothing new is listed afterwards.
    source = package_dir(world.root, name, "1.0.1", "x")
    refused(world.npm("rt-publish", registry_token["token"]).run(source, "publish"), 401)
    listed = world.client.get(
        packages_path(world.owner.org, world.owner.registry), headers=world.owner.auth()
    ).json()["items"]
    assert [item["version"] for item in listed] == ["1.0.0"]

    # The token works until it is deleted, then npm gets a 401.
    installer = world.npm("until-deleted", registry_token["token"])
    first = project_dir(world.root, "before-delete")
    ok(installer.run(first, "install", name))
    deleted = world.client.delete(
        f"{tokens_path(world.owner.org, world.owner.registry)}/{registry_token['id']}",
        headers=world.owner.auth(),
    )
    assert deleted.status_code == 200, deleted.text
    after = project_dir(world.root, "after-delete")
    refused(world.npm("deleted", registry_token["token"]).run(after, "install", name), 401)
    # Publishing the same version twice is a 409, which npm prints as npmjs words it.
    again = package_dir(world.root / "again", name, "1.0.0", "other")
    republished = world.npm("again", world.owner.tokens["rw"]).run(again, "publish")
    assert republished.returncode != 0, output(republished)
    assert (
        "npm error You cannot publish over the previously published versions: 1.0.0."
        in republished.stderr
    ), output(republished)


def test_a_tarball_tampered_with_on_disk_fails_npms_integrity_check(world: World) -> None:
    name = "tampered"
    world.publish(name, "1.0.0", "original")
    [package] = world.client.get(
        packages_path(world.owner.org, world.owner.registry), headers=world.owner.auth()
    ).json()["items"]
    stored = package_file(world.server, package["digests"]["sha256"], package["id"])
    forged_source = package_dir(world.root / "forged", name, "1.0.0", "forged")
    packed = ok(
        world.npm("packer", None).run(
            forged_source, "pack", "--pack-destination", str(world.root), "--json"
        )
    )
    forged = world.root / json.loads(packed.stdout)[0]["filename"]
    stored.write_bytes(forged.read_bytes())

    project = project_dir(world.root, "tampered")
    result = world.npm("victim", world.registry_token()["token"]).run(project, "install", name)
    everything = result.stdout + result.stderr
    assert result.returncode != 0, output(result)
    assert "EINTEGRITY" in everything, output(result)
    assert required_value(project, name) is None


def test_the_packages_api_takes_a_tgz_that_npm_then_installs(world: World) -> None:
    value = uuid.uuid4().hex
    source = package_dir(world.root, "from-the-api", "0.1.0", value)
    packed = ok(
        world.npm("packer", None).run(
            source, "pack", "--pack-destination", str(world.root), "--json"
        )
    )
    tgz = world.root / json.loads(packed.stdout)[0]["filename"]
    response = world.client.post(
        packages_path(world.owner.org, world.owner.registry),
        headers=bearer(world.owner.tokens["rw"]),
        files={"file": (tgz.name, tgz.read_bytes(), "application/octet-stream")},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["version"]) == ("from-the-api", "0.1.0")

    project = project_dir(world.root, "api")
    ok(world.npm("api", world.registry_token()["token"]).run(project, "install", "from-the-api"))
    assert required_value(project, "from-the-api") == value


def test_allowed_packages_hide_the_others_from_npm(world: World) -> None:
    """A token limited to ``@acme/*`` installs @acme/kept; @other/hidden is not found
    (404, as if absent), its packument and tarball too."""
    kept, hidden = uuid.uuid4().hex, uuid.uuid4().hex
    world.publish("@acme/kept", "1.0.0", kept)
    world.publish("@other/hidden", "1.0.0", hidden)
    created = world.client.post(
        tokens_path(world.owner.org, world.owner.registry),
        headers=world.owner.auth(),
        json={"description": "acme only", "allowed_packages": ["@acme/*"]},
    )
    assert created.status_code == 200, created.text
    token = created.json()["token"]
    installer = world.npm("limited", token)
    project = project_dir(world.root, "limited")
    ok(installer.run(project, "install", "@acme/kept"))
    assert required_value(project, "@acme/kept") == kept
    refused(installer.run(project, "install", "@other/hidden"), 404)
    assert required_value(project, "@other/hidden") is None

    # The hidden package's tarball, found with a token that may see it, is absent too.
    unlimited = world.registry_token()["token"]
    everyone = world.npm("everyone", unlimited)
    viewed = json.loads(ok(everyone.run(project, "view", "@other/hidden", "--json")).stdout)
    tarball = viewed["dist"]["tarball"]
    assert world.client.get(tarball, headers=bearer(token)).status_code == 404
    assert world.client.get(tarball, headers=bearer(unlimited)).status_code == 200
    packument = f"{world.registry_url}@other%2fhidden"
    assert world.client.get(packument, headers=bearer(token)).status_code == 404


def test_a_public_registry_installs_with_npm_and_no_token_at_all(
    world: World, package_seeder: Seeder
) -> None:
    public = package_seeder.services.registries.create(
        world.owner.org, "Open", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT, public=True
    )
    opened = replace(
        world,
        owner=replace(world.owner, registry=public.slug),
        registry_url=npm_registry(world.server, world.owner.org, public.slug),
    )
    value = uuid.uuid4().hex
    opened.publish("@acme/open", "1.0.0", value)
    anonymous = opened.npm("anonymous", None)
    assert "_authToken" not in anonymous.userconfig.read_text()
    project = project_dir(world.root, "public")
    ok(anonymous.run(project, "install", "@acme/open"))
    assert required_value(project, "@acme/open") == value
    # The control: the private registry beside it refuses the same tokenless install.
    world.publish("@acme/closed", "1.0.0", value)
    closed = project_dir(world.root, "private")
    refused(world.npm("anonymous", None).run(closed, "install", "@acme/closed"), 401)


def test_a_rotated_tokens_old_secret_installs_with_npm_during_its_grace(world: World) -> None:
    value = uuid.uuid4().hex
    world.publish("graced", "1.0.0", value)
    token = world.registry_token()
    grace = 20  # seconds: room for an npm install on a loaded machine
    rotated_at = time.monotonic()
    rotated = world.client.post(
        f"{tokens_path(world.owner.org, world.owner.registry)}/{token['id']}/rotate",
        headers=world.owner.auth(),
        json={"grace_period_seconds": grace},
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["token"]

    during = project_dir(world.root, "during")
    ok(world.npm("old-during", token["token"]).run(during, "install", "graced"))
    assert time.monotonic() - rotated_at < grace, "the install took longer than the grace"
    assert required_value(during, "graced") == value

    time.sleep(max(0.0, rotated_at + grace + 0.5 - time.monotonic()))
    after = project_dir(world.root, "after")
    refused(world.npm("old-after", token["token"]).run(after, "install", "graced"), 401)
    ok(world.npm("new-after", new).run(after, "install", "graced"))
    assert required_value(after, "graced") == value
