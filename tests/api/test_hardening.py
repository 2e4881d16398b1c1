"""Regression tests for defects found in review: each once answered 500, or let a secret
work longer than it should, or trusted a forged client address."""

import io
import zipfile
from pathlib import Path

import httpx
import pytest

from registry_tokens.kit.network import client_address, parse_networks
from tests.distributions import build_wheel
from tests.harness import Seeder
from tests.package_helpers import (
    admin_tenant,
    basic,
    create_registry_token,
    publish,
    published,
    registry_path,
    simple_path,
)

PROXY = parse_networks(["10.0.0.0/8"])


def test_forwarded_for_reads_every_header_line() -> None:
    # A client's own line first, then the trusted proxy's line with the real address.
    assert client_address("10.0.0.5", "192.0.2.1,198.51.100.7", PROXY) == "198.51.100.7"


@pytest.mark.parametrize("hop", ["not-an-address", "", "300.1.1.1"])
def test_an_unreadable_forwarded_hop_fails_closed(hop: str) -> None:
    assert client_address("10.0.0.5", f"192.0.2.1, {hop}", PROXY) is None


@pytest.mark.parametrize(
    ("hop", "client"),
    [("198.51.100.7:5555", "198.51.100.7"), ("[2001:db8::7]:443", "2001:db8::7")],
)
def test_forwarded_hops_with_ports(hop: str, client: str) -> None:
    assert client_address("10.0.0.5", hop, PROXY) == client


def test_rotating_without_grace_ends_every_earlier_grace(
    client: httpx.Client, seeder: Seeder
) -> None:
    tenant = admin_tenant(seeder)
    wheel = build_wheel(Path(_tmp(tenant.org)), "hard-one", "1.0")
    published(client, tenant.org, tenant.registry, tenant.tokens["rw"], wheel)
    token = create_registry_token(client, tenant.org, tenant.registry, tenant.tokens["rw"])
    first_secret = token["token"]
    url = token["url"].removeprefix(str(client.base_url))
    page = simple_path(tenant.org, tenant.registry)

    long_grace = client.post(
        f"{url}/rotate", headers=tenant.auth(), json={"grace_period_seconds": 604800}
    )
    assert client.get(page, headers=basic(first_secret)).status_code == 200
    cut_off = client.post(f"{url}/rotate", headers=tenant.auth(), json={"grace_period_seconds": 0})
    assert cut_off.status_code == 200
    assert client.get(page, headers=basic(first_secret)).status_code == 401
    assert client.get(page, headers=basic(long_grace.json()["token"])).status_code == 401
    assert client.get(page, headers=basic(cut_off.json()["token"])).status_code == 200


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"])
def test_expiry_out_of_range_is_a_validation_error(
    client: httpx.Client, seeder: Seeder, expires_at: str
) -> None:
    tenant = seeder.tenant()
    response = client.post(
        tenant.tokens_path,
        headers=tenant.auth(),
        json={"description": "x", "expires_at": expires_at},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "expires_at", "code": "invalid"}]


def test_expiry_accepts_lower_case_rfc3339(client: httpx.Client, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    response = client.post(
        tenant.tokens_path,
        headers=tenant.auth(),
        json={"description": "x", "expires_at": "2099-01-01t00:00:00z"},
    )
    assert response.status_code == 200
    assert response.json()["expires_at"] == "2099-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    "path",
    [
        "/v2/organizations/a%00b",
        "/a%00b/x/pypi/simple/",
        "/v2/packages/organizations/a%00b/registries/r/tokens",
    ],
)
def test_nul_in_a_path_is_never_a_server_error(
    client: httpx.Client, seeder: Seeder, path: str
) -> None:
    tenant = seeder.tenant()
    response = client.get(path, headers=tenant.auth())
    assert 400 <= response.status_code < 500
    assert "message" in response.json()


def _zip_with_encrypted_metadata() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("enc_pkg-1.0.dist-info/METADATA", "Name: enc-pkg\nVersion: 1.0\n")
    data = bytearray(buffer.getvalue())
    # Set the "encrypted" flag (bit 0) in the local and central headers.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        data[at + offset] |= 1
    return bytes(data)


def _wheel_with_metadata(metadata: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("odd_pkg-1.0.dist-info/METADATA", metadata)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("enc_pkg-1.0-py3-none-any.whl", _zip_with_encrypted_metadata()),
        (
            "odd_pkg-1.0-py3-none-any.whl",
            _wheel_with_metadata(b"Name: odd-pkg\nVersion: 1.0\nRequires-Python: >=3.8\xff\n"),
        ),
        (
            "odd_pkg-1.0-py3-none-any.whl",
            _wheel_with_metadata(b"Name: odd-pkg\nVersion: 1.0\nRequires-Python: banana\n"),
        ),
        ("odd%41pkg-1.0.tar.gz", b"not read: the name is refused first"),
        ("a" * 300 + "-1.0.tar.gz", b"not read: the name is refused first"),
        ("bad_gz-1.0.tar.gz", b"\x1f\x8b\x08\x00" + b"\x00" * 6 + b"garbage deflate stream"),
    ],
)
def test_unreadable_uploads_are_refused_not_crashed(
    client: httpx.Client, seeder: Seeder, filename: str, content: bytes
) -> None:
    tenant = admin_tenant(seeder)
    response = publish(
        client, tenant.org, tenant.registry, tenant.tokens["rw"], filename=filename, content=content
    )
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("Validation failed:")
    listed = client.get(
        f"{registry_path(tenant.org, tenant.registry)}/packages", headers=tenant.auth()
    )
    assert listed.json()["items"] == []


def test_deleting_a_registry_records_each_token_deleted(
    client: httpx.Client, seeder: Seeder
) -> None:
    tenant = admin_tenant(seeder)
    ids = [
        create_registry_token(client, tenant.org, tenant.registry, tenant.tokens["rw"])["id"]
        for _ in range(2)
    ]
    assert (
        client.delete(registry_path(tenant.org, tenant.registry), headers=tenant.auth()).status_code
        == 200
    )
    events = client.get(
        f"/v2/packages/organizations/{tenant.org}/audit-events",
        params={"event_type": "REGISTRY_TOKEN_DELETED"},
        headers=tenant.auth(),
    ).json()["items"]
    assert sorted(event["subject"]["id"] for event in events) == sorted(ids)
    assert {event["data"]["reason"] for event in events} == {"registry deleted"}


def _tmp(name: str) -> str:
    import tempfile

    return tempfile.mkdtemp(prefix=f"{name}-")
