"""Issue 11, responses: a response that holds a secret is never stored by a cache
(``Cache-Control: no-store``); an IPv4-mapped CIDR means the IPv4 network it maps.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from registry_tokens.kit.network import client_address
from registry_tokens.kit.secrets import secret_kind
from registry_tokens.settings import Settings
from tests.harness import Seeder, Server, Tenant, in_process_server
from tests.registry_tokens.test_token_lifecycle import create_token, install, rotate, token_url


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Behind a trusted proxy (127.0.0.1): tests choose the client's address."""
    env = {"REGISTRY_TOKENS_TRUSTED_PROXIES": "127.0.0.1"}
    with in_process_server(tmp_path_factory.mktemp("proxied-server"), env=env) as started:
        yield started


@pytest.fixture
def http(proxied_server: Server) -> Iterator[httpx.Client]:
    with proxied_server.client(timeout=30) as client:
        yield client


@pytest.fixture
def owner(proxied_server: Server) -> Tenant:
    return Seeder(proxied_server).tenant()


def secrets_in(document: Any) -> list[str]:
    """Every string in ``document`` that is a real token (its checksum holds)."""
    if isinstance(document, str):
        return [document] if secret_kind(document) is not None else []
    if isinstance(document, list):
        return [found for item in document for found in secrets_in(item)]
    if isinstance(document, dict):
        return [found for item in document.values() for found in secrets_in(item)]
    return []


# --------------------------------------------------------------------------- Cache-Control


def test_responses_with_a_secret_are_no_store(http: httpx.Client, owner: Tenant) -> None:
    headers = owner.auth()
    created = http.post(owner.tokens_path, headers=headers, json={"description": "cached?"})
    token_id = created.json()["id"]
    url = token_url(owner, token_id)
    responses = {
        "create": created,
        "rotate": rotate(http, owner, token_id, {"grace_period_seconds": 60}),
        "rotate without a body": rotate(http, owner, token_id),
        "get": http.get(url, headers=headers),
        "list": http.get(owner.tokens_path, headers=headers),
        "update": http.patch(url, headers=headers, json={"description": "still"}),
        "refused create": http.post(owner.tokens_path, headers=headers, json={}),
        "delete": http.delete(url, headers=headers),
    }
    carrying = set()
    for name, response in responses.items():
        assert response.status_code in (200, 422), (name, response.text)
        secrets = secrets_in(response.json()) if response.content else []
        no_store = response.headers.get("Cache-Control") == "no-store"
        assert no_store == bool(secrets), name
        if secrets:
            carrying.add(name)
    assert carrying == {"create", "rotate", "rotate without a body"}


# --------------------------------------------------------------------------- mapped CIDRs


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        (["::ffff:10.0.0.0/104"], ["10.0.0.0/8"]),
        (["::ffff:10.1.2.3"], ["10.1.2.3/32"]),
        (["::ffff:0:0/96"], ["0.0.0.0/0"]),
        (["::FFFF:10.0.0.0/104", "10.0.0.0/8", "2001:db8::/32"], ["10.0.0.0/8", "2001:db8::/32"]),
    ],
)
def test_an_ipv4_mapped_cidr_is_the_ipv4_network_it_maps(
    http: httpx.Client, owner: Tenant, written: list[str], stored: list[str]
) -> None:
    token = create_token(http, owner, allowed_cidrs=written)
    assert token["allowed_cidrs"] == stored
    assert (
        http.get(token_url(owner, token["id"]), headers=owner.auth()).json()["allowed_cidrs"]
        == stored
    )
    secret = token["token"]
    inside, outside = ("10.1.2.3", "192.0.2.1") if stored != ["0.0.0.0/0"] else ("8.8.8.8", "::1")
    for client in (inside, f"::ffff:{inside}"):
        assert (
            install(http, owner.org, owner.registry, secret, forwarded_for=client).status_code
            == 200
        )
    assert (
        install(http, owner.org, owner.registry, secret, forwarded_for=outside).status_code == 401
    )


def test_an_ipv4_mapped_cidr_on_update(http: httpx.Client, owner: Tenant) -> None:
    token = create_token(http, owner)
    updated = http.patch(
        token_url(owner, token["id"]),
        headers=owner.auth(),
        json={"allowed_cidrs": ["::ffff:192.0.2.0/120"]},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["allowed_cidrs"] == ["192.0.2.0/24"]
    secret = token["token"]
    assert (
        install(http, owner.org, owner.registry, secret, forwarded_for="192.0.2.9").status_code
        == 200
    )
    assert (
        install(http, owner.org, owner.registry, secret, forwarded_for="10.0.0.1").status_code
        == 401
    )


def test_ipv6_cidrs_beyond_the_mapped_range_stay_ipv6(http: httpx.Client, owner: Tenant) -> None:
    """A network that holds more than mapped addresses matches real IPv6 clients."""
    token = create_token(http, owner, allowed_cidrs=["::ffff:0:0/95"])
    assert token["allowed_cidrs"] == ["::fffe:0:0/95"]
    secret = token["token"]
    assert (
        install(http, owner.org, owner.registry, secret, forwarded_for="::fffe:1:2").status_code
        == 200
    )
    assert (
        install(http, owner.org, owner.registry, secret, forwarded_for="10.1.2.3").status_code
        == 401
    )


def test_an_ipv4_mapped_trusted_proxy_is_believed() -> None:
    """``REGISTRY_TOKENS_TRUSTED_PROXIES`` is read the same way: as written, this proxy's
    address (seen as 127.0.0.1) would never be trusted."""
    proxies = Settings(trusted_proxies="::ffff:127.0.0.1").trusted_proxy_networks
    assert client_address("127.0.0.1", "10.9.8.7", proxies) == "10.9.8.7"
    assert client_address("::ffff:127.0.0.1", "10.9.8.7", proxies) == "10.9.8.7"
