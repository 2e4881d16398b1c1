from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import Seeder, ServerProcess, Tenant, running_server


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
