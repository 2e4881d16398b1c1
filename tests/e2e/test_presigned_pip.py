"""End to end: go-buildkite's ``PackagesService.Create`` (its three requests, rebuilt in
``tests/api/test_go_client_presigned_upload.py``) against a real server process, then pip
installs what it published."""

import uuid
from pathlib import Path

from tests.api.test_go_client_contract import GoClient
from tests.api.test_go_client_presigned_upload import GoPackages
from tests.distributions import build_wheel
from tests.e2e.test_pip_install import (
    NAME,
    VERSION,
    assert_installed,
    fresh_venv,
    index_url,
    pip_install,
)
from tests.harness import Seeder, ServerProcess
from tests.package_helpers import admin_tenant, create_registry_token


def test_a_package_created_through_the_presigned_flow_installs_with_pip(
    package_server: ServerProcess, package_seeder: Seeder, tmp_path: Path
) -> None:
    owner = admin_tenant(package_seeder)
    value = uuid.uuid4().hex
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = build_wheel(dist, NAME, VERSION, value=value)
    go = GoClient(package_server, owner.tokens["rw"])
    try:
        created = GoPackages(go).create(owner.org, owner.registry, wheel)
    finally:
        go.close()
    assert (created.package.name, created.package.version) == (NAME, VERSION)

    with package_server.client() as http:
        token = create_registry_token(http, owner.org, owner.registry, owner.tokens["rw"])
    python = fresh_venv(tmp_path / "venv")
    result = pip_install(
        python,
        "--index-url",
        index_url(package_server, owner.org, owner.registry, token["token"]),
        NAME,
    )
    assert_installed(result, python, value)
