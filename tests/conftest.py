"""Fixtures of the whole suite. Service and API tests get the app in process, on the real
database of the run's backend; ``tests/e2e/conftest.py`` swaps in real server processes.

Every fixture is safe under pytest-xdist: each worker has its own tmp dirs, its own scratch
databases (named after its pid) and ports from ``free_port``.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

from tests.harness import Seeder, Server, Tenant, in_process_server

# The browser fixtures (``browser``, ``browser_proxy``) for every folder's tests.
pytest_plugins = ["tests.browser"]

# CI runs the property and fuzz tests with fixed seeds, so a result is reproducible and a
# submission is judged on its change; locally they explore new inputs on every run.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with in_process_server(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture(scope="session")
def seeder(server: Server) -> Seeder:
    return Seeder(server)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client(timeout=30) as http:
        yield http


@pytest.fixture
def tenant(seeder: Seeder) -> Tenant:
    return seeder.tenant()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def package_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of the package tests' own, so that their checks of its package directory
    (nothing stored by a refused upload, files gone after a delete) see only their files."""
    workdir = tmp_path_factory.mktemp("package-server")
    storage = workdir / "packages"
    with in_process_server(
        workdir, env={"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(storage)}
    ) as started:
        yield started


@pytest.fixture(scope="session")
def package_seeder(package_server: Server) -> Seeder:
    return Seeder(package_server)


@pytest.fixture
def package_client(package_server: Server) -> Iterator[httpx.Client]:
    with package_server.client(timeout=60) as http:
        yield http
