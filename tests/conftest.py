import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

from tests.harness import Seeder, ServerProcess, Tenant, running_server

# CI runs the property and fuzz tests with fixed seeds, so a result is reproducible and a
# submission is judged on its change; locally they explore new inputs on every run.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture(scope="session")
def seeder(server: ServerProcess) -> Seeder:
    return Seeder(server)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        yield http


@pytest.fixture
def tenant(seeder: Seeder) -> Tenant:
    return seeder.tenant()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def package_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of the package tests' own, so that their checks of its package directory
    (nothing stored by a refused upload, files gone after a delete) see only their files."""
    workdir = tmp_path_factory.mktemp("package-server")
    storage = workdir / "packages"
    with running_server(
        workdir, env={"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(storage)}
    ) as started:
        yield started


@pytest.fixture(scope="session")
def package_seeder(package_server: ServerProcess) -> Seeder:
    return Seeder(package_server)


@pytest.fixture
def package_client(package_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=package_server.base_url, timeout=60) as http:
        yield http
