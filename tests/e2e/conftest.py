"""End-to-end tests: real ``registry-tokens serve`` processes, for what only they show
(crashes, several workers or instances, pip, the server's own files, the CLI). These
fixtures replace the in-process ones of ``tests/conftest.py`` for this folder. The seeders
are overridden too: a session-scoped fixture is built once per worker, so the root one
would otherwise keep seeding whichever server it met first."""

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import Seeder, ServerProcess, running_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture(scope="session")
def seeder(server: ServerProcess) -> Seeder:
    return Seeder(server)


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client(timeout=30) as http:
        yield http


@pytest.fixture(scope="session")
def package_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of the package tests' own (see ``tests/conftest.py``)."""
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
    with package_server.client(timeout=60) as http:
        yield http
