"""A server in process that trusts two loopback issuers: one up (it rotates keys when a
test asks), one that is down."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import InProcessServer, Seeder, Tenant, in_process_server
from tests.oidc_issuer import LocalIssuer, local_issuer
from tests.package_helpers import admin_tenant, registry_path


@pytest.fixture(scope="session")
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer() as started:
        yield started


@pytest.fixture(scope="session")
def dead_issuer() -> Iterator[LocalIssuer]:
    """An issuer that was up long enough to have a key, and is down for good."""
    with local_issuer() as started:
        started.stop()
        yield started


@pytest.fixture(scope="session")
def oidc_server(
    tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer, dead_issuer: LocalIssuer
) -> Iterator[InProcessServer]:
    env = {
        "REGISTRY_TOKENS_OIDC_ISSUERS": f"{issuer.url},{dead_issuer.url}",
        "REGISTRY_TOKENS_OIDC_JWKS_REFRESH_SECONDS": "1",
        "REGISTRY_TOKENS_OIDC_FETCH_TIMEOUT_SECONDS": "2",
    }
    with in_process_server(tmp_path_factory.mktemp("oidc-server"), env=env) as started:
        yield started


@pytest.fixture(scope="session")
def oidc_seeder(oidc_server: InProcessServer) -> Seeder:
    return Seeder(oidc_server)


@pytest.fixture
def oidc_client(oidc_server: InProcessServer) -> Iterator[httpx.Client]:
    with oidc_server.client() as http:
        yield http


@pytest.fixture
def owner(oidc_seeder: Seeder) -> Tenant:
    return admin_tenant(oidc_seeder)


def set_policy(client: httpx.Client, tenant: Tenant, policy: Any) -> None:
    response = client.patch(
        registry_path(tenant.org, tenant.registry),
        headers=tenant.auth(),
        json={"oidc_policy": policy},
    )
    assert response.status_code == 200, response.text


def audience(server: InProcessServer, tenant: Tenant, registry: str | None = None) -> str:
    return f"{server.base_url}/{tenant.org}/{registry or tenant.registry}"


def events(
    server: InProcessServer, client: httpx.Client, tenant: Tenant, event_type: str
) -> list[dict[str, Any]]:
    """The organization's audit events of a type, once queued refusals are written."""
    server.app.state.services.install.refusals.flush()
    response = client.get(
        f"/v2/packages/organizations/{tenant.org}/audit-events",
        params={"event_type": event_type},
        headers=tenant.auth(),
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
