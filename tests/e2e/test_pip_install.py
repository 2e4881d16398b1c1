"""End to end with a client none of us wrote: pip installs from a registry through its tokens.

Every install goes into a fresh virtual environment (made without pip, so it takes a
moment; the test run's own pip installs into it with ``--python``), with pip isolated from
this machine's configuration so that our index is the only place it can find anything.
"""

import hashlib
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.distributions import build_wheel
from tests.harness import Seeder, ServerProcess, Tenant, unique
from tests.package_helpers import (
    ALL_REGISTRY_SCOPES,
    admin_tenant,
    basic,
    bearer,
    create_registry_token,
    package_file,
    published,
    registries_path,
    simple_path,
    tokens_path,
)

NAME = "hello-pkg"
MODULE = "hello_pkg"
VERSION = "1.0.0"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
HASH_MISMATCH = "THESE PACKAGES DO NOT MATCH THE HASHES"


# --------------------------------------------------------------------------- pip


def pip_env() -> dict[str, str]:
    """This machine's environment without any PIP_* setting (find-links, constraints …)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def fresh_venv(directory: Path) -> Path:
    """A new, empty virtual environment; returns its interpreter."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True, timeout=60
    )
    python = directory / "bin" / "python"
    assert imported_value(python, MODULE) is None  # nothing there yet
    return python


def pip_install(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pip install -v`` into the venv of ``python``, isolated, never prompting."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--isolated",
            "--no-input",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--retries",
            "0",
            "--timeout",
            "30",
            "-v",
            *args,
        ],
        env=pip_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def imported_value(python: Path, module: str) -> str | None:
    """``module.VALUE`` as the venv's interpreter imports it, or ``None`` if it can't."""
    result = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.VALUE)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=pip_env(),
        cwd=python.parent,  # never the test run's directory, which holds other modules
    )
    return result.stdout.strip() if result.returncode == 0 else None


def index_url(server: ServerProcess, org: str, registry: str, secret: str | None) -> str:
    host = urlsplit(server.base_url).netloc
    credentials = f"buildkite:{secret}@" if secret is not None else ""
    return f"http://{credentials}{host}{simple_path(org, registry)}"


def assert_installed(
    result: subprocess.CompletedProcess[str], python: Path, value: str, name: str = NAME
) -> None:
    assert result.returncode == 0, output(result)
    assert f"Successfully installed {name}-{VERSION}" in result.stdout, output(result)
    assert imported_value(python, MODULE) == value


def assert_refused_with_401(result: subprocess.CompletedProcess[str], python: Path) -> None:
    assert result.returncode != 0, output(result)
    everything = result.stdout + result.stderr
    # pip's words for a 401 on the index: "401 Error, Credentials not correct for <url>".
    assert re.search(r"\b401 Error\b", everything), output(result)
    assert "Successfully installed" not in everything
    assert imported_value(python, MODULE) is None


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def owner(package_seeder: Seeder) -> Tenant:
    return admin_tenant(package_seeder)


@pytest.fixture
def wheel(tmp_path: Path) -> tuple[Path, str]:
    """A wheel of ``hello-pkg`` whose module holds a value unique to the test."""
    value = uuid.uuid4().hex
    directory = tmp_path / "dist"
    directory.mkdir()
    return build_wheel(directory, NAME, VERSION, value=value), value


# --------------------------------------------------------------------------- tests


def test_pip_installs_with_a_registry_token_until_it_is_deleted(
    package_server: ServerProcess,
    package_client: httpx.Client,
    owner: Tenant,
    wheel: tuple[Path, str],
    tmp_path: Path,
) -> None:
    path, value = wheel
    package = published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)
    assert (package["name"], package["version"]) == (NAME, VERSION)
    token = create_registry_token(package_client, owner.org, owner.registry, owner.tokens["rw"])
    url = index_url(package_server, owner.org, owner.registry, token["token"])

    python = fresh_venv(tmp_path / "venv")
    assert_installed(pip_install(python, "--index-url", url, NAME), python, value)

    deleted = package_client.delete(
        f"{tokens_path(owner.org, owner.registry)}/{token['id']}", headers=owner.auth()
    )
    assert deleted.status_code == 200, deleted.text

    again = fresh_venv(tmp_path / "venv-after-delete")
    assert_refused_with_401(pip_install(again, "--index-url", url, NAME), again)


def test_a_registry_token_of_another_registry_is_refused(
    package_server: ServerProcess,
    package_client: httpx.Client,
    package_seeder: Seeder,
    owner: Tenant,
    wheel: tuple[Path, str],
    tmp_path: Path,
) -> None:
    path, _value = wheel
    published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)
    other = package_seeder.services.registries.create(owner.org, "Other", slug=unique("reg"))
    foreign = create_registry_token(package_client, owner.org, other.slug, owner.tokens["rw"])
    # The token is alive: it opens its own registry.
    own = package_client.get(simple_path(owner.org, other.slug), headers=basic(foreign["token"]))
    assert own.status_code == 200, own.text

    python = fresh_venv(tmp_path / "venv")
    url = index_url(package_server, owner.org, owner.registry, foreign["token"])
    assert_refused_with_401(pip_install(python, "--index-url", url, NAME), python)
    # Nor does any request of the install side let it through, whatever the scheme.
    for headers in (basic(foreign["token"]), bearer(foreign["token"])):
        page = package_client.get(
            f"{simple_path(owner.org, owner.registry)}{NAME}/", headers=headers
        )
        assert page.status_code == 401
        assert page.headers["www-authenticate"].startswith("Basic")


def test_api_tokens_install_only_with_read_packages(
    package_server: ServerProcess,
    package_client: httpx.Client,
    package_seeder: Seeder,
    owner: Tenant,
    wheel: tuple[Path, str],
    tmp_path: Path,
) -> None:
    path, value = wheel
    published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)
    project = f"{simple_path(owner.org, owner.registry)}{NAME}/"

    lacking = package_seeder.api_token(
        owner.email, tuple(s for s in ALL_REGISTRY_SCOPES if s != "read_packages")
    )
    python = fresh_venv(tmp_path / "venv-lacking")
    url = index_url(package_server, owner.org, owner.registry, lacking)
    assert_refused_with_401(pip_install(python, "--index-url", url, NAME), python)

    reader = package_seeder.api_token(owner.email, ("read_packages",))
    python = fresh_venv(tmp_path / "venv-reader")
    url = index_url(package_server, owner.org, owner.registry, reader)
    assert_installed(pip_install(python, "--index-url", url, NAME), python, value)
    assert package_client.get(project, headers=bearer(reader)).status_code == 200

    # read_packages is not enough for someone else's registry, nor from a token limited
    # to another organization.
    stranger = package_seeder.tenant(scopes=("read_packages",))
    limited = package_seeder.api_token(owner.email, ("read_packages",), orgs=(stranger.org,))
    for secret in (stranger.tokens["rw"], limited):
        for headers in (basic(secret), bearer(secret)):
            assert package_client.get(project, headers=headers).status_code == 401


def test_a_public_registry_installs_without_credentials(
    package_server: ServerProcess,
    package_client: httpx.Client,
    owner: Tenant,
    wheel: tuple[Path, str],
    tmp_path: Path,
) -> None:
    path, value = wheel
    created = package_client.post(
        registries_path(owner.org),
        headers=owner.auth(),
        json={"name": f"Public {uuid.uuid4().hex[:8]}", "ecosystem": "python", "public": True},
    )
    assert created.status_code == 200, created.text
    assert created.json()["public"] is True
    public = created.json()["slug"]
    published(package_client, owner.org, public, owner.tokens["rw"], path)
    published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)

    python = fresh_venv(tmp_path / "venv")
    url = index_url(package_server, owner.org, public, None)
    assert_installed(pip_install(python, "--index-url", url, NAME), python, value)

    # The same project in the private registry beside it stays closed.
    private = package_client.get(f"{simple_path(owner.org, owner.registry)}{NAME}/")
    assert private.status_code == 401
    assert private.headers["www-authenticate"].startswith("Basic")


def file_links(page: str) -> list[tuple[str, str, str]]:
    """(href without fragment, sha256 of the fragment, text) of every link of a PEP 503 page."""
    return re.findall(r'<a href="([^"#]+)#sha256=([0-9a-f]{64})"[^>]*>([^<]+)</a>', page)


def test_hashes_in_the_index_are_the_uploaded_bytes_and_pip_checks_them(
    package_server: ServerProcess,
    package_client: httpx.Client,
    owner: Tenant,
    wheel: tuple[Path, str],
    tmp_path: Path,
) -> None:
    path, value = wheel
    uploaded = path.read_bytes()
    sha256 = hashlib.sha256(uploaded).hexdigest()
    package = published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)
    assert package["digests"] == {
        "sha256": sha256,
        "sha512": hashlib.sha512(uploaded).hexdigest(),
    }
    token = create_registry_token(package_client, owner.org, owner.registry, owner.tokens["rw"])
    auth = basic(token["token"])
    page_url = f"{package_server.base_url}{simple_path(owner.org, owner.registry)}{NAME}/"

    # PEP 503 HTML: one link, its fragment the sha256 of what was uploaded, and the bytes
    # behind it exactly those.
    html = package_client.get(page_url, headers=auth)
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    [(href, link_sha256, text)] = file_links(html.text)
    assert (link_sha256, text) == (sha256, path.name)
    download = package_client.get(urljoin(page_url, href), headers=auth)
    assert download.status_code == 200
    assert download.content == uploaded

    # PEP 691 JSON lists the same file with the same hash.
    json_page = package_client.get(page_url, headers={**auth, "Accept": SIMPLE_JSON})
    assert json_page.status_code == 200
    assert json_page.headers["content-type"].startswith(SIMPLE_JSON)
    body: dict[str, Any] = json_page.json()
    assert body["meta"]["api-version"].startswith("1.")
    assert body["name"] == NAME
    [entry] = body["files"]
    assert (entry["filename"], entry["hashes"]) == (path.name, {"sha256": sha256})
    assert urljoin(page_url, entry["url"]) == urljoin(page_url, href)
    index = package_client.get(
        f"{package_server.base_url}{simple_path(owner.org, owner.registry)}",
        headers={**auth, "Accept": SIMPLE_JSON},
    )
    assert index.status_code == 200
    assert index.json()["projects"] == [{"name": NAME}]

    # pip with --require-hashes: the right hash installs, a wrong one is refused.
    url = index_url(package_server, owner.org, owner.registry, token["token"])
    right = tmp_path / "right.txt"
    right.write_text(f"{NAME}=={VERSION} --hash=sha256:{sha256}\n")
    python = fresh_venv(tmp_path / "venv-right")
    installed = pip_install(python, "--index-url", url, "--require-hashes", "-r", str(right))
    assert_installed(installed, python, value)

    wrong = tmp_path / "wrong.txt"
    wrong.write_text(f"{NAME}=={VERSION} --hash=sha256:{hashlib.sha256(b'tampered').hexdigest()}\n")
    python = fresh_venv(tmp_path / "venv-wrong")
    refused = pip_install(python, "--index-url", url, "--require-hashes", "-r", str(wrong))
    assert refused.returncode != 0, output(refused)
    assert HASH_MISMATCH in refused.stderr, output(refused)
    assert imported_value(python, MODULE) is None

    # Tamper with the stored file: pip, checking the index's #sha256= by itself, refuses it.
    stored = package_file(package_server, sha256, package["id"])
    assert stored.read_bytes() == uploaded
    impostor = build_wheel(tmp_path, NAME, VERSION, value="impostor").read_bytes()
    stored.write_bytes(impostor)
    served = package_client.get(urljoin(page_url, href), headers=auth)
    assert served.content == impostor  # the server hands out the tampered bytes …
    python = fresh_venv(tmp_path / "venv-tampered")
    tampered = pip_install(python, "--index-url", url, NAME)
    assert tampered.returncode != 0, output(tampered)  # … and pip will not install them
    assert HASH_MISMATCH in tampered.stderr, output(tampered)
    assert sha256 in tampered.stderr, output(tampered)
    assert imported_value(python, MODULE) is None


@pytest.mark.parametrize("spelling", ["Hello_Pkg", "hello.pkg", "HELLO-PKG", "hello__pkg"])
def test_project_names_are_normalized_by_redirect(
    package_client: httpx.Client, owner: Tenant, wheel: tuple[Path, str], spelling: str
) -> None:
    path, _value = wheel
    published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)
    token = create_registry_token(package_client, owner.org, owner.registry, owner.tokens["rw"])
    simple = simple_path(owner.org, owner.registry)

    # Without credentials: 401, not a redirect that would tell the project exists.
    assert package_client.get(f"{simple}{spelling}/").status_code == 401

    redirect = package_client.get(f"{simple}{spelling}/", headers=basic(token["token"]))
    assert redirect.status_code == 301
    assert urlsplit(redirect.headers["location"]).path == f"{simple}{NAME}/"
    followed = package_client.get(
        urljoin(str(redirect.url), redirect.headers["location"]), headers=basic(token["token"])
    )
    assert followed.status_code == 200
    assert [text for _href, _sha, text in file_links(followed.text)] == [path.name]


def test_allowed_packages_hide_the_others_from_pip(
    package_server: ServerProcess,
    package_client: httpx.Client,
    owner: Tenant,
    wheel: tuple[Path, str],
    tmp_path: Path,
) -> None:
    """A token limited to ``hello-*`` installs hello-pkg; for it, other-pkg does not exist
    (pip: "No matching distribution"), and the index lists only the allowed name."""
    path, value = wheel
    published(package_client, owner.org, owner.registry, owner.tokens["rw"], path)
    other = build_wheel(tmp_path / "dist", "other-pkg", VERSION, module="other_pkg")
    published(package_client, owner.org, owner.registry, owner.tokens["rw"], other)
    created = package_client.post(
        tokens_path(owner.org, owner.registry),
        headers=owner.auth(),
        json={"description": "hello only", "allowed_packages": ["Hello_*"]},
    )
    assert created.status_code == 200, created.text
    secret = created.json()["token"]
    url = index_url(package_server, owner.org, owner.registry, secret)

    python = fresh_venv(tmp_path / "venv")
    assert_installed(pip_install(python, "--index-url", url, NAME), python, value)
    hidden = pip_install(python, "--index-url", url, "other-pkg")
    assert hidden.returncode != 0, output(hidden)
    assert "No matching distribution found for other-pkg" in hidden.stdout + hidden.stderr
    assert "Successfully installed" not in hidden.stdout

    index = simple_path(owner.org, owner.registry)
    listed = package_client.get(index, headers={**basic(secret), "Accept": SIMPLE_JSON})
    assert [project["name"] for project in listed.json()["projects"]] == [NAME]
    html = package_client.get(index, headers=basic(secret)).text
    assert NAME in html
    assert "other-pkg" not in html
    hidden_page = package_client.get(f"{index}other-pkg/", headers=basic(secret))
    absent_page = package_client.get(f"{index}never-published/", headers=basic(secret))
    assert hidden_page.status_code == absent_page.status_code == 404
    assert hidden_page.content == absent_page.content  # nothing tells them apart
    # The owner's own API token sees both.
    everything = package_client.get(
        index, headers={**bearer(owner.tokens["rw"]), "Accept": SIMPLE_JSON}
    )
    assert sorted(p["name"] for p in everything.json()["projects"]) == [NAME, "other-pkg"]
