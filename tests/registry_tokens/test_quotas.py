"""Registry token limits at their exact edges, in process, on both backends: quotas
(downloads, bytes, clients) with their periods, not_before, disable/enable, package
patterns on downloads, and usage as the token and its series show it.

The services read a clock the tests set, so every edge is tried at the millisecond.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry_tokens.kit.timestamps import format_timestamp
from tests.distributions import build_wheel
from tests.harness import InProcessServer, Seeder, Tenant, in_process_server
from tests.package_helpers import (
    admin_tenant,
    basic,
    package_file,
    packages_path,
    published,
    simple_path,
    tokens_path,
)

MS = timedelta(milliseconds=1)


class Clock:
    """The time the server's services read."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, clock: Clock) -> Iterator[InProcessServer]:
    env = {"REGISTRY_TOKENS_TRUSTED_PROXIES": "127.0.0.1"}
    with in_process_server(tmp_path_factory.mktemp("quotas"), env=env, clock=clock) as started:
        yield started


@pytest.fixture(scope="module")
def seeder(server: InProcessServer) -> Seeder:
    return Seeder(server)


@pytest.fixture
def client(server: InProcessServer) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@dataclass
class Registry:
    tenant: Tenant
    files: dict[str, str]  # project -> its wheel's download path
    size: int  # acme-utils' wheel's size (what download() fetches unless told)


@pytest.fixture
def registry(client: httpx.Client, seeder: Seeder, tmp_path: Path, clock: Clock) -> Registry:
    clock.now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    return make_registry(client, seeder, tmp_path)


def make_registry(client: httpx.Client, seeder: Seeder, tmp_path: Path) -> Registry:
    """A registry (of its own organization) with two wheels published."""
    tenant = admin_tenant(seeder)
    directory = tmp_path / tenant.org
    directory.mkdir()
    files, sizes = {}, {}
    for project in ("acme-utils", "other-lib"):
        wheel = build_wheel(directory, project, "1.0.0")
        body = published(client, tenant.org, tenant.registry, tenant.tokens["rw"], wheel)
        files[project] = f"/{tenant.org}/{tenant.registry}/pypi/files/{body['id']}/{wheel.name}"
        sizes[project] = wheel.stat().st_size
    return Registry(tenant, files, sizes["acme-utils"])


def create(client: httpx.Client, registry: Registry, **fields: Any) -> dict[str, Any]:
    tenant = registry.tenant
    response = client.post(
        tokens_path(tenant.org, tenant.registry),
        headers=tenant.auth(),
        json={"description": "limited", **fields},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def download(
    client: httpx.Client,
    registry: Registry,
    secret: str,
    *,
    project: str = "acme-utils",
    address: str = "198.51.100.1",
) -> httpx.Response:
    headers = {**basic(secret), "X-Forwarded-For": address}
    return client.get(registry.files[project], headers=headers)


def token(client: httpx.Client, registry: Registry, token_id: str) -> dict[str, Any]:
    tenant = registry.tenant
    response = client.get(
        f"{tokens_path(tenant.org, tenant.registry)}/{token_id}", headers=tenant.auth()
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refusals(
    server: InProcessServer, client: httpx.Client, registry: Registry, token_id: str
) -> list[str]:
    """The reasons recorded for the token's refused uses, oldest first."""
    server.app.state.services.install.refusals.flush()
    tenant = registry.tenant
    response = client.get(
        f"/v2/packages/organizations/{tenant.org}/audit-events",
        params={"token": token_id, "event_type": "REGISTRY_TOKEN_USE_REFUSED"},
        headers=tenant.auth(),
    )
    assert response.status_code == 200, response.text
    return [event["data"]["reason"] for event in reversed(response.json()["items"])]


def flush_usage(server: InProcessServer) -> None:
    server.app.state.services.install.usage.flush()


# --------------------------------------------------------------------------- quotas


def test_the_nth_download_of_max_downloads_n_works_and_the_next_is_refused(
    server: InProcessServer, client: httpx.Client, registry: Registry
) -> None:
    created = create(client, registry, max_downloads=3)
    for _ in range(3):
        assert download(client, registry, created["token"]).status_code == 200
    refused = download(client, registry, created["token"])
    assert refused.status_code == 403, refused.text
    assert "max_downloads" in refused.json()["message"]
    assert "Retry-After" not in refused.headers  # no period: only a reset or a new limit
    # Index pages are not downloads: they still work.
    index = client.get(
        simple_path(registry.tenant.org, registry.tenant.registry), headers=basic(created["token"])
    )
    assert index.status_code == 200
    usage = token(client, registry, created["id"])["usage"]
    assert (usage["downloads"], usage["bytes"], usage["clients"]) == (3, 3 * registry.size, 1)
    assert refusals(server, client, registry, created["id"]) == ["quota_exceeded"]


def test_max_bytes_admits_a_file_that_reaches_it_and_refuses_one_that_would_pass_it(
    client: httpx.Client, registry: Registry
) -> None:
    exact = create(client, registry, max_bytes=2 * registry.size)
    assert download(client, registry, exact["token"]).status_code == 200
    assert download(client, registry, exact["token"]).status_code == 200  # exactly at it
    refused = download(client, registry, exact["token"])
    assert refused.status_code == 403
    assert "max_bytes" in refused.json()["message"]

    short = create(client, registry, max_bytes=2 * registry.size - 1)
    assert download(client, registry, short["token"]).status_code == 200
    assert download(client, registry, short["token"]).status_code == 403  # refused whole
    assert token(client, registry, short["id"])["usage"]["bytes"] == registry.size


def test_max_clients_counts_distinct_addresses_and_known_ones_keep_working(
    server: InProcessServer, client: httpx.Client, registry: Registry
) -> None:
    created = create(client, registry, max_clients=2)
    secret = created["token"]
    assert download(client, registry, secret, address="198.51.100.1").status_code == 200
    assert download(client, registry, secret, address="2001:db8::2").status_code == 200
    refused = download(client, registry, secret, address="198.51.100.3")
    assert refused.status_code == 403
    assert "max_clients" in refused.json()["message"]
    assert download(client, registry, secret, address="198.51.100.1").status_code == 200
    assert download(client, registry, secret, address="2001:db8::2").status_code == 200
    usage = token(client, registry, created["id"])["usage"]
    assert (usage["downloads"], usage["clients"]) == (4, 2)
    assert refusals(server, client, registry, created["id"]) == ["quota_exceeded"]


@pytest.mark.parametrize(
    ("period", "start", "boundary"),
    [
        ("day", datetime(2026, 12, 2, 9, 0, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)),
        # 2026-12-02 is a Wednesday: the week starts again on Monday the 7th.
        ("week", datetime(2026, 12, 2, 9, 0, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)),
        ("month", datetime(2026, 12, 2, 9, 0, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)
def test_quota_period_starts_counts_again_exactly_at_the_utc_boundary(
    client: httpx.Client,
    registry: Registry,
    clock: Clock,
    period: str,
    start: datetime,
    boundary: datetime,
) -> None:
    clock.now = start
    created = create(client, registry, max_downloads=1, quota_period=period)
    secret = created["token"]
    assert download(client, registry, secret).status_code == 200
    clock.now = boundary - MS
    refused = download(client, registry, secret)
    assert refused.status_code == 403
    assert refused.headers["Retry-After"] == "1"  # a millisecond left: one second, rounded up
    assert format_timestamp(boundary) in refused.json()["message"]
    usage = token(client, registry, created["id"])["usage"]
    assert usage["until"] == format_timestamp(boundary)
    clock.now = boundary
    assert token(client, registry, created["id"])["usage"]["downloads"] == 0  # a new period
    assert download(client, registry, secret).status_code == 200
    assert download(client, registry, secret).status_code == 403
    usage = token(client, registry, created["id"])["usage"]
    assert (usage["downloads"], usage["since"]) == (1, format_timestamp(boundary))


def test_a_usage_reset_starts_the_counts_and_the_quota_again(
    client: httpx.Client, registry: Registry, seeder: Seeder
) -> None:
    created = create(client, registry, max_downloads=1)
    secret = created["token"]
    assert download(client, registry, secret).status_code == 200
    assert download(client, registry, secret).status_code == 403
    tenant = registry.tenant
    url = f"{tokens_path(tenant.org, tenant.registry)}/{created['id']}/usage/reset"
    reader = seeder.api_token(tenant.email, ("read_registries",))
    refused = client.post(url, headers={"Authorization": f"Bearer {reader}"})
    assert refused.status_code == 403, refused.text
    reset = client.post(url, headers=tenant.auth())
    assert reset.status_code == 200, reset.text
    assert reset.json()["usage"]["downloads"] == 0
    assert download(client, registry, secret).status_code == 200
    assert download(client, registry, secret).status_code == 403
    events = client.get(
        f"/v2/packages/organizations/{tenant.org}/audit-events",
        params={"token": created["id"], "event_type": "REGISTRY_TOKEN_USAGE_RESET"},
        headers=tenant.auth(),
    ).json()["items"]
    assert [event["data"]["downloads"] for event in events] == [1]


# --------------------------------------------------------------------------- validity


def test_not_before_refuses_a_millisecond_early_and_works_from_that_instant(
    server: InProcessServer, client: httpx.Client, registry: Registry, clock: Clock
) -> None:
    starts = datetime(2026, 12, 5, 8, 30, 15, 250_000, tzinfo=UTC)
    created = create(client, registry, not_before=format_timestamp(starts))
    assert created["not_before"] == format_timestamp(starts)
    index = simple_path(registry.tenant.org, registry.tenant.registry)
    clock.now = starts - MS
    assert client.get(index, headers=basic(created["token"])).status_code == 401
    assert download(client, registry, created["token"]).status_code == 401
    clock.now = starts
    assert client.get(index, headers=basic(created["token"])).status_code == 200
    assert download(client, registry, created["token"]).status_code == 200
    assert refusals(server, client, registry, created["id"])[:1] == ["not_yet_valid"]


def test_a_disabled_token_is_refused_at_once_until_enabled(
    server: InProcessServer, client: httpx.Client, registry: Registry
) -> None:
    created = create(client, registry)
    tenant = registry.tenant
    url = f"{tokens_path(tenant.org, tenant.registry)}/{created['id']}"
    index = simple_path(tenant.org, tenant.registry)
    assert client.get(index, headers=basic(created["token"])).status_code == 200

    disabled = client.post(f"{url}/disable", headers=tenant.auth())
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled_at"] is not None
    assert client.get(index, headers=basic(created["token"])).status_code == 401
    assert download(client, registry, created["token"]).status_code == 401
    again = client.post(f"{url}/disable", headers=tenant.auth())  # changes nothing
    assert again.json()["disabled_at"] == disabled.json()["disabled_at"]

    enabled = client.post(f"{url}/enable", headers=tenant.auth())
    assert enabled.status_code == 200
    assert enabled.json()["disabled_at"] is None
    assert download(client, registry, created["token"]).status_code == 200
    assert refusals(server, client, registry, created["id"]) == ["disabled", "disabled"]
    events = client.get(
        f"/v2/packages/organizations/{tenant.org}/audit-events",
        params={"token": created["id"]},
        headers=tenant.auth(),
    ).json()["items"]
    kinds = [event["type"] for event in events]
    assert kinds.count("REGISTRY_TOKEN_DISABLED") == 1  # the second disable changed nothing
    assert kinds.count("REGISTRY_TOKEN_ENABLED") == 1


def test_another_organizations_token_cannot_be_disabled_or_measured(
    client: httpx.Client, registry: Registry, seeder: Seeder
) -> None:
    created = create(client, registry)
    stranger = admin_tenant(seeder)
    tenant = registry.tenant
    url = f"{tokens_path(tenant.org, tenant.registry)}/{created['id']}"
    for method, path in (
        ("POST", "/disable"),
        ("POST", "/enable"),
        ("POST", "/usage/reset"),
        ("GET", "/usage"),
    ):
        response = client.request(method, url + path, headers=stranger.auth())
        assert response.status_code == 404, (path, response.text)
    registry_usage = client.get(
        f"/v2/packages/organizations/{tenant.org}/registries/{tenant.registry}/usage",
        headers=stranger.auth(),
    )
    assert registry_usage.status_code == 404


# --------------------------------------------------------------------------- packages


def test_a_file_of_a_package_the_token_may_not_see_is_absent_and_its_download_recorded(
    server: InProcessServer, client: httpx.Client, registry: Registry
) -> None:
    created = create(client, registry, allowed_packages=["ACME_*"])
    assert created["allowed_packages"] == ["acme-*"]  # normalized as Python names are
    assert download(client, registry, created["token"], project="acme-utils").status_code == 200
    hidden = download(client, registry, created["token"], project="other-lib")
    assert hidden.status_code == 404
    assert refusals(server, client, registry, created["id"]) == ["package_not_allowed"]
    flush_usage(server)
    assert token(client, registry, created["id"])["usage"]["downloads"] == 1


# --------------------------------------------------------------------------- usage


def test_usage_of_a_token_without_quotas_is_counted_after_the_download(
    server: InProcessServer, client: httpx.Client, registry: Registry, clock: Clock
) -> None:
    created = create(client, registry)
    clock.now = datetime(2026, 12, 2, 10, 15, tzinfo=UTC)
    for address in ("198.51.100.1", "198.51.100.1", "198.51.100.2"):
        assert download(client, registry, created["token"], address=address).status_code == 200
    clock.now = datetime(2026, 12, 2, 11, 5, tzinfo=UTC)
    assert download(client, registry, created["token"]).status_code == 200
    flush_usage(server)
    usage = token(client, registry, created["id"])["usage"]
    assert (usage["downloads"], usage["bytes"], usage["clients"]) == (4, 4 * registry.size, 2)
    assert usage["until"] is None

    tenant = registry.tenant
    url = f"{tokens_path(tenant.org, tenant.registry)}/{created['id']}/usage"
    hourly = client.get(
        url,
        params={"from": "2026-12-02T09:00:00Z", "to": "2026-12-02T12:00:00Z", "interval": "hour"},
        headers=tenant.auth(),
    )
    assert hourly.status_code == 200, hourly.text
    body = hourly.json()
    assert [(b["at"], b["downloads"], b["clients"]) for b in body["series"]] == [
        ("2026-12-02T09:00:00.000Z", 0, 0),
        ("2026-12-02T10:00:00.000Z", 3, 2),
        ("2026-12-02T11:00:00.000Z", 1, 1),
    ]
    assert (body["downloads"], body["bytes"], body["clients"]) == (4, 4 * registry.size, 2)
    assert list(body)[:3] == ["from", "to", "interval"]
    assert (body["from"], body["to"], body["interval"]) == (
        "2026-12-02T09:00:00.000Z",
        "2026-12-02T12:00:00.000Z",
        "hour",
    )
    daily = client.get(
        url, params={"from": "2026-12-01T00:00:00Z", "interval": "day"}, headers=tenant.auth()
    ).json()
    assert [(b["at"], b["downloads"], b["clients"]) for b in daily["series"]] == [
        ("2026-12-01T00:00:00.000Z", 0, 0),
        ("2026-12-02T00:00:00.000Z", 4, 2),  # distinct across the day's hours
    ]


def test_registry_usage_sums_its_tokens_and_counts_clients_across_them(
    server: InProcessServer, client: httpx.Client, registry: Registry, clock: Clock
) -> None:
    clock.now = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    first = create(client, registry, description="first")
    second = create(client, registry, description="second", max_downloads=10)
    assert download(client, registry, first["token"], address="198.51.100.1").status_code == 200
    assert download(client, registry, second["token"], address="198.51.100.1").status_code == 200
    assert download(client, registry, second["token"], address="198.51.100.9").status_code == 200
    flush_usage(server)
    tenant = registry.tenant
    response = client.get(
        f"/v2/packages/organizations/{tenant.org}/registries/{tenant.registry}/usage",
        params={"from": "2026-12-02T00:00:00Z", "to": "2026-12-03T00:00:00Z"},
        headers=tenant.auth(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["downloads"], body["clients"]) == (3, 2)
    assert [(t["description"], t["downloads"], t["clients"]) for t in body["tokens"]] == [
        ("second", 2, 2),
        ("first", 1, 1),
    ]
    assert body["series"] == [
        {"at": "2026-12-02T00:00:00.000Z", "downloads": 3, "bytes": 3 * registry.size, "clients": 2}
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "from"),
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "from"),
        ({"from": "2026-11-01T00:00:00Z", "interval": "hour"}, "from"),
        ({"interval": "minute"}, "interval"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-12-01T00:00:00"}, "to"),
    ],
)
def test_a_bad_usage_window_is_a_422_naming_its_field(
    client: httpx.Client, registry: Registry, params: dict[str, str], field: str
) -> None:
    created = create(client, registry)
    tenant = registry.tenant
    url = f"{tokens_path(tenant.org, tenant.registry)}/{created['id']}/usage"
    response = client.get(url, params=params, headers=tenant.auth())
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_an_unknown_token_has_no_usage(client: httpx.Client, registry: Registry) -> None:
    tenant = registry.tenant
    for token_id in (str(uuid.uuid4()), "not-an-id"):
        url = f"{tokens_path(tenant.org, tenant.registry)}/{token_id}/usage"
        assert client.get(url, headers=tenant.auth()).status_code == 404


# --------------------------------------------------------------------------- the fields


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"allowed_packages": []}, "allowed_packages"),
        ({"allowed_packages": ["@acme/*"]}, "allowed_packages"),  # an npm name, Python registry
        ({"allowed_packages": ["acme-?"]}, "allowed_packages"),
        ({"allowed_packages": ["a" * 215]}, "allowed_packages"),
        ({"allowed_packages": "acme-*"}, "allowed_packages"),
        ({"allowed_packages": [1]}, "allowed_packages"),
        (
            {"not_before": "2030-01-01T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"},
            "not_before",
        ),
        ({"not_before": "2030-01-01T00:00:00"}, "not_before"),
        ({"max_downloads": 0}, "max_downloads"),
        ({"max_downloads": -1}, "max_downloads"),
        ({"max_downloads": True}, "max_downloads"),
        ({"max_downloads": 1.5}, "max_downloads"),
        ({"max_downloads": "10"}, "max_downloads"),
        ({"max_clients": 2**31}, "max_clients"),
        ({"max_bytes": 2**53}, "max_bytes"),
        ({"quota_period": "year"}, "quota_period"),
    ],
)
def test_a_bad_limit_is_a_422_naming_its_field_and_nothing_is_stored(
    client: httpx.Client, registry: Registry, fields: dict[str, Any], field: str
) -> None:
    tenant = registry.tenant
    path = tokens_path(tenant.org, tenant.registry)
    before = client.get(path, headers=tenant.auth()).json()
    response = client.post(path, headers=tenant.auth(), json={"description": "bad", **fields})
    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert client.get(path, headers=tenant.auth()).json() == before
    # The same on update, and the token keeps what it had.
    created = create(client, registry)
    updated = client.patch(f"{path}/{created['id']}", headers=tenant.auth(), json=fields)
    assert updated.status_code == 422, updated.text
    kept = token(client, registry, created["id"])
    assert {name: kept[name] for name in fields} == {name: created[name] for name in fields}


def test_limits_round_trip_and_an_update_changes_only_what_it_names(
    client: httpx.Client, registry: Registry
) -> None:
    created = create(
        client,
        registry,
        allowed_packages=["Acme.Utils", "acme_*", "acme-*"],
        not_before="2026-12-01T00:00:00Z",
        expires_at="2027-01-01T00:00:00Z",
        max_downloads=5.0,  # JSON cannot tell 5.0 from 5
        max_clients=3,
        max_bytes=2**53 - 1,
        quota_period="week",
    )
    assert created["allowed_packages"] == ["acme-utils", "acme-*"]  # normalized, once each
    assert created["not_before"] == "2026-12-01T00:00:00.000Z"
    limits = ("max_downloads", "max_clients", "max_bytes", "quota_period")
    assert [created[name] for name in limits] == [5, 3, 2**53 - 1, "week"]
    assert created["disabled_at"] is None
    tenant = registry.tenant
    url = f"{tokens_path(tenant.org, tenant.registry)}/{created['id']}"
    updated = client.patch(url, headers=tenant.auth(), json={"max_downloads": None})
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert body["max_downloads"] is None
    assert [body[name] for name in limits[1:]] == [3, 2**53 - 1, "week"]
    assert body["allowed_packages"] == ["acme-utils", "acme-*"]
    # not_before must stay before the stored expiry.
    late = client.patch(url, headers=tenant.auth(), json={"not_before": "2027-01-01T00:00:00Z"})
    assert late.status_code == 422
    events = client.get(
        f"/v2/packages/organizations/{tenant.org}/audit-events",
        params={"token": created["id"], "event_type": "REGISTRY_TOKEN_UPDATED"},
        headers=tenant.auth(),
    ).json()["items"]
    assert [event["data"]["changed"] for event in events] == [["max_downloads"]]


def test_usage_of_a_token_whose_registry_was_deleted_does_not_hold_up_the_others(
    server: InProcessServer,
    client: httpx.Client,
    registry: Registry,
    seeder: Seeder,
    tmp_path: Path,
) -> None:
    doomed = make_registry(client, seeder, tmp_path)
    gone = create(client, doomed)
    kept = create(client, registry)
    assert download(client, doomed, gone["token"]).status_code == 200
    assert download(client, registry, kept["token"]).status_code == 200
    tenant = doomed.tenant
    deleted = client.delete(
        f"/v2/packages/organizations/{tenant.org}/registries/{tenant.registry}",
        headers=tenant.auth(),
    )
    assert deleted.status_code in (200, 204), deleted.text
    flush_usage(server)  # raises if the batch fails
    assert server.app.state.services.install.usage.pending == 0
    assert token(client, registry, kept["id"])["usage"]["downloads"] == 1


def test_a_file_gone_from_disk_is_a_404_and_counts_nothing(
    server: InProcessServer, client: httpx.Client, registry: Registry
) -> None:
    created = create(client, registry, max_downloads=5)
    package_id = registry.files["acme-utils"].split("/")[-2]
    tenant = registry.tenant
    listed = client.get(packages_path(tenant.org, tenant.registry), headers=tenant.auth())
    [package] = [item for item in listed.json()["items"] if item["id"] == package_id]
    package_file(server, package["digests"]["sha256"], package_id).unlink()
    assert download(client, registry, created["token"]).status_code == 404
    assert token(client, registry, created["id"])["usage"]["downloads"] == 0
