"""Quotas are exact across processes and instances: two real servers on one database
(PostgreSQL as the issue asks; one SQLite file too), sharing a package directory, take
50 concurrent downloads of a token whose quota has room for 10, and exactly 10 succeed.
A disable through one instance is refused at once by the other, an enable works at once.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.distributions import build_wheel
from tests.harness import Seeder, ServerProcess, Tenant, running_server, scratch_database
from tests.object_store import STORAGE, bucket_env
from tests.package_helpers import admin_tenant, basic, published, tokens_path

ATTEMPTS = 50
ROOM = 10


@dataclass
class Shared:
    servers: list[ServerProcess]
    tenant: Tenant
    file_path: str
    size: int


@contextmanager
def two_instances(workdir: Path) -> Iterator[Shared]:
    """Two servers on one database and one package store, trusting loopback as a
    proxy (so ``X-Forwarded-For`` names the client), with a wheel published."""
    packages = workdir / "packages"
    env = {
        "REGISTRY_TOKENS_TRUSTED_PROXIES": "127.0.0.1",
        "REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(packages),
        "REGISTRY_TOKENS_SECRET_KEY": "k" * 64,
        # With object storage, one bucket for both (each server would get its own).
        **(bucket_env() if STORAGE == "s3" else {}),
    }
    with scratch_database(workdir) as url, ExitStack() as stack:
        servers = [
            stack.enter_context(running_server(workdir / name, url, env=env)) for name in "ab"
        ]
        seeder = Seeder(servers[0])
        try:
            tenant = admin_tenant(seeder)
            wheel = build_wheel(workdir, "quota-pkg", "1.0.0")
            with httpx.Client(base_url=servers[0].base_url, timeout=30) as client:
                body = published(client, tenant.org, tenant.registry, tenant.tokens["rw"], wheel)
            file_path = f"/{tenant.org}/{tenant.registry}/pypi/files/{body['id']}/{wheel.name}"
            yield Shared(servers, tenant, file_path, wheel.stat().st_size)
        finally:
            seeder.services.database.dispose()


def create(shared: Shared, **fields: Any) -> dict[str, Any]:
    tenant = shared.tenant
    with httpx.Client(base_url=shared.servers[0].base_url, timeout=30) as client:
        response = client.post(
            tokens_path(tenant.org, tenant.registry),
            headers=tenant.auth(),
            json={"description": "quota", **fields},
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def download_all(shared: Shared, secret: str, addresses: list[str]) -> list[int]:
    """One download per address, all at once, alternating between the two instances."""
    clients = [httpx.Client(base_url=server.base_url, timeout=60) for server in shared.servers]

    def one(index: int) -> int:
        headers = {**basic(secret), "X-Forwarded-For": addresses[index]}
        return clients[index % 2].get(shared.file_path, headers=headers).status_code

    try:
        with ThreadPoolExecutor(max_workers=ATTEMPTS) as pool:
            return list(pool.map(one, range(len(addresses))))
    finally:
        for client in clients:
            client.close()


def usage(shared: Shared, token_id: str) -> dict[str, int]:
    tenant = shared.tenant
    with httpx.Client(base_url=shared.servers[1].base_url, timeout=30) as client:
        response = client.get(
            f"{tokens_path(tenant.org, tenant.registry)}/{token_id}", headers=tenant.auth()
        )
    assert response.status_code == 200, response.text
    found: dict[str, int] = response.json()["usage"]
    return found


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    with two_instances(tmp_path_factory.mktemp("quota-instances")) as started:
        yield started


def test_max_downloads_admits_exactly_its_number_of_concurrent_downloads(
    shared: Shared,
) -> None:
    created = create(shared, max_downloads=ROOM)
    statuses = download_all(shared, created["token"], ["198.51.100.7"] * ATTEMPTS)
    assert sorted(set(statuses)) == [200, 403], statuses
    assert statuses.count(200) == ROOM
    assert usage(shared, created["id"])["downloads"] == ROOM


def test_max_clients_admits_exactly_its_number_of_new_addresses(shared: Shared) -> None:
    created = create(shared, max_clients=ROOM)
    addresses = [f"198.51.100.{n}" for n in range(1, ATTEMPTS + 1)]
    statuses = download_all(shared, created["token"], addresses)
    assert statuses.count(200) == ROOM, statuses
    assert statuses.count(403) == ATTEMPTS - ROOM
    admitted = [
        address for address, status in zip(addresses, statuses, strict=True) if status == 200
    ]
    # The admitted addresses keep working; the others stay out.
    again = download_all(shared, created["token"], admitted)
    assert again == [200] * ROOM
    found = usage(shared, created["id"])
    assert (found["clients"], found["downloads"]) == (ROOM, 2 * ROOM)


def test_max_bytes_admits_exactly_the_files_that_fit(shared: Shared) -> None:
    created = create(shared, max_bytes=ROOM * shared.size)
    statuses = download_all(shared, created["token"], ["198.51.100.8"] * ATTEMPTS)
    assert statuses.count(200) == ROOM, statuses
    assert usage(shared, created["id"])["bytes"] == ROOM * shared.size


def test_disable_and_enable_through_one_instance_hold_at_once_on_the_other(
    shared: Shared,
) -> None:
    created = create(shared)
    tenant = shared.tenant
    token_url = f"{tokens_path(tenant.org, tenant.registry)}/{created['id']}"
    a, b = (httpx.Client(base_url=s.base_url, timeout=30) for s in shared.servers)
    with a, b:
        assert b.get(shared.file_path, headers=basic(created["token"])).status_code == 200
        for _ in range(5):
            assert a.post(f"{token_url}/disable", headers=tenant.auth()).status_code == 200
            assert b.get(shared.file_path, headers=basic(created["token"])).status_code == 401
            assert a.post(f"{token_url}/enable", headers=tenant.auth()).status_code == 200
            assert b.get(shared.file_path, headers=basic(created["token"])).status_code == 200
