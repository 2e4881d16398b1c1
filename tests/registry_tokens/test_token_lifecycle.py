"""Issue 5, the token lifecycle: expiry, usage, rotation, IP limits, audit log, leak response.

Each rule is pinned at its edge. Where the edge is a moment (expiry, the end of a grace
period, the usage interval), in-process services with a clock the test sets act on the
same database as the running server; black-box tests show the same through HTTP in real
time, with waits of about two seconds at most.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from registry_tokens.kit.context import RequestContext
from registry_tokens.kit.pagination import PageRequest
from registry_tokens.kit.secrets import SecretKind, generate_secret, secret_kind
from registry_tokens.registries.repository import RegistryRow
from registry_tokens.registry_tokens.access import InstallUnauthorized
from registry_tokens.services import Services
from tests.harness import Seeder, Server, Tenant, in_process_server, unique
from tests.package_helpers import basic, bearer, simple_path, tokens_path
from tests.registry_tokens.test_seed_contract import EXTENSION_KEYS
from tests.registry_tokens.test_seed_contract import TOKEN_KEYS as SEED_KEYS

TOKEN_KEYS = SEED_KEYS + EXTENSION_KEYS
MS = timedelta(milliseconds=1)
CONTEXT = RequestContext(client_ip="203.0.113.5", user_agent="pip/test")
REFUSED = "REGISTRY_TOKEN_USE_REFUSED"
MAX_GRACE = 7 * 24 * 3600
CIDRS = ["192.0.2.0/24", "2001:db8::/32"]


# --------------------------------------------------------------------------- helpers


def basic_value(secret: str) -> str:
    return basic(secret)["Authorization"]


def audit_path(org: str) -> str:
    return f"/v2/packages/organizations/{org}/audit-events"


def ms(moment: datetime) -> datetime:
    """``moment`` truncated to the millisecond, as the wire and the database keep it."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def iso(moment: datetime) -> str:
    """Buildkite's wire format: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_ts(value: str) -> datetime:
    assert len(value) == 24, value
    assert value.endswith("Z"), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def as_json(response: httpx.Response) -> Any:
    return response.json()


def create_token(
    client: httpx.Client,
    tenant: Tenant,
    registry: str | None = None,
    *,
    user_agent: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    body = {"description": "lifecycle", **fields}
    headers = {**tenant.auth(), **({"User-Agent": user_agent} if user_agent else {})}
    response = client.post(
        tokens_path(tenant.org, registry or tenant.registry), headers=headers, json=body
    )
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    assert list(created) == [*TOKEN_KEYS, "token"]
    return created


def token_url(tenant: Tenant, token_id: str, registry: str | None = None) -> str:
    return f"{tokens_path(tenant.org, registry or tenant.registry)}/{token_id}"


def get_token(client: httpx.Client, tenant: Tenant, token_id: str) -> dict[str, Any]:
    response = client.get(token_url(tenant, token_id), headers=tenant.auth())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert list(body) == TOKEN_KEYS
    return body


def install(
    client: httpx.Client,
    org: str,
    registry: str,
    secret: str,
    *,
    forwarded_for: str | None = None,
    user_agent: str = "pip/24.0",
) -> httpx.Response:
    headers = {"Authorization": basic_value(secret), "User-Agent": user_agent}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return client.get(simple_path(org, registry), headers=headers)


def rotate(
    client: httpx.Client, tenant: Tenant, token_id: str, body: Any = None, **kwargs: Any
) -> httpx.Response:
    url = f"{token_url(tenant, token_id)}/rotate"
    if body is None:
        return client.post(url, headers=tenant.auth(), **kwargs)
    return client.post(url, headers=tenant.auth(), json=body, **kwargs)


def audit_pages(
    client: httpx.Client,
    org: str,
    headers: dict[str, str],
    filters: dict[str, str] | None = None,
    per_page: int = 100,
) -> list[list[dict[str, Any]]]:
    """Every page of the organization's audit events, newest first, walking ``links.next``."""
    pages: list[list[dict[str, Any]]] = []
    response = client.get(
        audit_path(org), headers=headers, params={**(filters or {}), "per_page": per_page}
    )
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        assert list(body) == ["items", "links"]
        pages.append(body["items"])
        if body["links"]["next"] is None:
            return pages
        assert len(pages) < 1000, "links.next never ends"
        response = client.get(body["links"]["next"], headers=headers)


def audit_events(
    client: httpx.Client, org: str, headers: dict[str, str], *, refused: int = 0, **filters: str
) -> list[dict[str, Any]]:
    """The events that match ``filters``, once at least ``refused`` of them are refused
    uses: those are written moments after the refusal (``registry_tokens.refusals``)."""
    deadline = time.monotonic() + 10
    while True:
        events = [event for page in audit_pages(client, org, headers, filters) for event in page]
        if sum(event["type"] == REFUSED for event in events) >= refused:
            return events
        assert time.monotonic() < deadline, f"fewer than {refused} refusals recorded: {events}"
        time.sleep(0.02)


def refusals(events: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(token id, reason) of every refused use among ``events``."""
    return Counter(
        (event["subject"]["id"], event["data"]["reason"])
        for event in events
        if event["type"] == REFUSED
    )


def assert_no_secret(document: Any, secrets: list[str]) -> None:
    """No secret, nor its random part alone, anywhere in ``document``'s JSON."""
    text = json.dumps(document)
    for secret in secrets:
        assert secret not in text
        assert secret.split("_", 1)[1] not in text


def wait_until(moment: datetime) -> None:
    remaining = (moment - datetime.now(UTC)).total_seconds()
    assert remaining < 3.5, "a test waits at most a few seconds"
    if remaining > 0:
        time.sleep(remaining)


class FakeClock:
    """The time the in-process services read; tests set ``now``."""

    def __init__(self) -> None:
        self.now = ms(datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class InProcess:
    """Services of this test process on the server's database, reading ``clock``."""

    services: Services
    clock: FakeClock

    def authorize(
        self, org: str, registry: str, secret: str, context: RequestContext = CONTEXT
    ) -> RegistryRow:
        grant = anyio.run(
            self.services.install.authorize, org, registry, basic_value(secret), context
        )
        return grant.registry

    def refused(
        self, org: str, registry: str, secret: str, context: RequestContext = CONTEXT
    ) -> None:
        with pytest.raises(InstallUnauthorized) as refusal:
            self.authorize(org, registry, secret, context)
        assert refusal.value.status == 401
        assert refusal.value.headers["WWW-Authenticate"].startswith("Basic ")
        self.services.install.refusals.flush()  # recorded now, not moments later


def in_process(server: Server) -> Iterator[InProcess]:
    clock = FakeClock()
    services = Services.build(server.settings(), clock=clock)
    try:
        yield InProcess(services, clock)
    finally:
        services.install.refusals.close()
        services.database.dispose()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def local(server: Server) -> Iterator[InProcess]:
    """In-process services with a settable clock, on the default server's database."""
    yield from in_process(server)


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def extended_server(
    tmp_path_factory: pytest.TempPathFactory, signing_key: ec.EllipticCurvePrivateKey
) -> Iterator[Server]:
    """A server behind a trusted proxy (127.0.0.1) that writes usage at most every two
    seconds and takes GitHub secret scanning reports signed by ``signing_key`` (id k1)."""
    workdir = tmp_path_factory.mktemp("lifecycle-server")
    pem = (
        signing_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    keys_file = workdir / "secret-scanning-keys.json"
    keys_file.write_text(
        json.dumps({"public_keys": [{"key_identifier": "k1", "key": pem, "is_current": True}]})
    )
    env = {
        "REGISTRY_TOKENS_TRUSTED_PROXIES": "127.0.0.1",
        "REGISTRY_TOKENS_USAGE_WRITE_INTERVAL_SECONDS": "2",
        "REGISTRY_TOKENS_SECRET_SCANNING_KEYS_FILE": str(keys_file),
    }
    with in_process_server(workdir, env=env) as started:
        yield started


@pytest.fixture(scope="module")
def extended_seeder(extended_server: Server) -> Seeder:
    return Seeder(extended_server)


@pytest.fixture
def extended_client(extended_server: Server) -> Iterator[httpx.Client]:
    with extended_server.client(timeout=30) as http:
        yield http


@pytest.fixture
def extended_tenant(extended_seeder: Seeder) -> Tenant:
    return extended_seeder.tenant()


# --------------------------------------------------------------------------- expiry


def test_expiry_edge_one_millisecond_either_side(
    client: httpx.Client, tenant: Tenant, local: InProcess
) -> None:
    expires = ms(datetime.now(UTC) + timedelta(hours=1))
    body = create_token(client, tenant, expires_at=iso(expires))
    assert body["expires_at"] == iso(expires)
    secret = body["token"]

    local.clock.now = expires - MS
    assert local.authorize(tenant.org, tenant.registry, secret).slug == tenant.registry
    local.clock.now = expires  # the instant itself is already too late
    local.refused(tenant.org, tenant.registry, secret)
    local.clock.now = expires + MS
    local.refused(tenant.org, tenant.registry, secret)

    # The running server, on the real clock, still lets it in: only the clock decided.
    assert install(client, tenant.org, tenant.registry, secret).status_code == 200
    events = audit_events(client, tenant.org, tenant.auth(), token=body["id"], event_type=REFUSED)
    assert [event["data"]["reason"] for event in events] == ["expired", "expired"]
    for event in events:
        assert event["context"] == {"client_ip": "203.0.113.5", "user_agent": "pip/test"}
        assert event["actor"] == {
            "type": "registry_token",
            "id": body["id"],
            "name": body["description"],
        }


def test_state_filter_switches_at_the_expiry_instant(
    client: httpx.Client, tenant: Tenant, local: InProcess
) -> None:
    expires = ms(datetime.now(UTC) + timedelta(hours=1))
    expiring = create_token(client, tenant, expires_at=iso(expires))
    forever = create_token(client, tenant, description="no expiry")
    caller = local.services.auth.authenticate(f"Bearer {tenant.tokens['rw']}")

    def listed(state: str) -> set[str]:
        _registry, page = local.services.registry_tokens.list(
            caller, tenant.org, tenant.registry, PageRequest.of(1, 100), state
        )
        return {str(token.id) for token in page.items}

    local.clock.now = expires - MS
    assert listed("active") == {expiring["id"], forever["id"]}
    assert listed("expired") == set()
    local.clock.now = expires
    assert listed("active") == {forever["id"]}
    assert listed("expired") == {expiring["id"]}


def test_expiry_through_the_api_in_real_time(client: httpx.Client, tenant: Tenant) -> None:
    expires = ms(datetime.now(UTC) + timedelta(milliseconds=2500))
    expiring = create_token(client, tenant, expires_at=iso(expires))
    forever = create_token(client, tenant, description="no expiry")
    assert forever["expires_at"] is None

    def listed(state: str | None) -> list[str]:
        params = {"state": state} if state else {}
        response = client.get(tenant.tokens_path, headers=tenant.auth(), params=params)
        assert response.status_code == 200, response.text
        for item in response.json():
            assert list(item) == TOKEN_KEYS
        return [item["id"] for item in response.json()]

    assert install(client, tenant.org, tenant.registry, expiring["token"]).status_code == 200
    assert listed("active") == [forever["id"], expiring["id"]]
    assert listed("expired") == []
    assert datetime.now(UTC) < expires, "the machine is too slow for this test's timing"

    wait_until(expires + timedelta(milliseconds=300))
    refused = install(client, tenant.org, tenant.registry, expiring["token"])
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    assert "message" in refused.json()
    assert install(client, tenant.org, tenant.registry, forever["token"]).status_code == 200
    assert listed("active") == [forever["id"]]
    assert listed("expired") == [expiring["id"]]
    assert listed(None) == [forever["id"], expiring["id"]]  # expired, not deleted
    assert get_token(client, tenant, expiring["id"])["expires_at"] == iso(expires)

    bogus = client.get(tenant.tokens_path, headers=tenant.auth(), params={"state": "revoked"})
    assert bogus.status_code == 422
    assert "message" in bogus.json()

    events = audit_events(client, tenant.org, tenant.auth(), refused=1, event_type=REFUSED)
    assert refusals(events) == Counter({(expiring["id"], "expired"): 1})
    assert events[0]["context"]["client_ip"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00.000Z"),
        ("2030-01-01T00:00:00.000Z", "2030-01-01T00:00:00.000Z"),
        ("2030-01-01T02:00:00+02:00", "2030-01-01T00:00:00.000Z"),
        ("2030-01-01T00:00:00.123456+00:00", "2030-01-01T00:00:00.123Z"),
    ],
)
def test_expires_at_is_shown_in_utc_with_milliseconds(
    client: httpx.Client, tenant: Tenant, sent: str, shown: str
) -> None:
    created = create_token(client, tenant, expires_at=sent)
    assert created["expires_at"] == shown
    assert get_token(client, tenant, created["id"])["expires_at"] == shown


BAD_EXPIRIES: list[Any] = [
    "2020-01-01T00:00:00Z",  # the past
    "2030-01-01T00:00:00",  # no time zone
    "2030-01-01",  # a date without a zone is naive too
    "next tuesday",
    "",
    "2030-13-01T00:00:00Z",
    1893456000,
    True,
    {"at": "2030-01-01T00:00:00Z"},
    ["2030-01-01T00:00:00Z"],
]


@pytest.mark.parametrize("value", BAD_EXPIRIES, ids=repr)
def test_an_invalid_expiry_is_422_on_create_and_update(
    client: httpx.Client, tenant: Tenant, value: Any
) -> None:
    created = client.post(
        tenant.tokens_path, headers=tenant.auth(), json={"description": "x", "expires_at": value}
    )
    assert created.status_code == 422, created.text
    assert {"field": "expires_at", "code": "invalid"} in created.json()["errors"]
    assert created.json()["message"].startswith("Validation failed")
    listed = client.get(tenant.tokens_path, headers=tenant.auth())
    assert listed.json() == []  # nothing was created

    token = create_token(client, tenant, expires_at="2030-01-01T00:00:00Z")
    updated = client.post(
        token_url(tenant, token["id"]), headers=tenant.auth(), json={"expires_at": value}
    )
    assert updated.status_code == 422, updated.text
    assert {"field": "expires_at", "code": "invalid"} in updated.json()["errors"]
    assert get_token(client, tenant, token["id"])["expires_at"] == "2030-01-01T00:00:00.000Z"


def test_an_expiry_one_second_ago_is_in_the_past(client: httpx.Client, tenant: Tenant) -> None:
    just_gone = iso(datetime.now(UTC) - timedelta(seconds=1))
    response = client.post(
        tenant.tokens_path,
        headers=tenant.auth(),
        json={"description": "x", "expires_at": just_gone},
    )
    assert response.status_code == 422, response.text


def test_update_sets_keeps_and_clears_the_expiry(client: httpx.Client, tenant: Tenant) -> None:
    token = create_token(client, tenant)
    assert token["expires_at"] is None
    url = token_url(tenant, token["id"])

    set_ = client.post(url, headers=tenant.auth(), json={"expires_at": "2031-06-01T12:00:00Z"})
    assert set_.status_code == 200, set_.text
    assert list(set_.json()) == TOKEN_KEYS
    assert set_.json()["expires_at"] == "2031-06-01T12:00:00.000Z"

    kept = client.patch(url, headers=tenant.auth(), json={"description": "renamed"})
    assert kept.json()["expires_at"] == "2031-06-01T12:00:00.000Z"
    assert kept.json()["description"] == "renamed"

    cleared = client.put(url, headers=tenant.auth(), json={"expires_at": None})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["expires_at"] is None
    assert cleared.json()["description"] == "renamed"
    assert get_token(client, tenant, token["id"])["expires_at"] is None

    updates = audit_events(
        client, tenant.org, tenant.auth(), token=token["id"], event_type="REGISTRY_TOKEN_UPDATED"
    )
    assert [event["data"]["changed"] for event in updates] == [
        ["expires_at"],
        ["description"],
        ["expires_at"],
    ]


# --------------------------------------------------------------------------- IP limits

INSIDE = [
    "192.0.2.0",  # first address of 192.0.2.0/24
    "192.0.2.1",
    "192.0.2.254",
    "192.0.2.255",  # last
    "2001:db8::",  # first address of 2001:db8::/32
    "2001:db8::1",
    "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",  # last
]
OUTSIDE = [
    "192.0.1.255",  # just before
    "192.0.3.0",  # just after
    "192.0.3.1",
    "198.51.100.7",
    "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",  # just before
    "2001:db9::",  # just after
    "2001:db9::1",
    "127.0.0.1",
    "::1",
]


def test_allowed_cidrs_admit_exactly_their_addresses(
    extended_client: httpx.Client, extended_tenant: Tenant
) -> None:
    tenant = extended_tenant
    token = create_token(extended_client, tenant, allowed_cidrs=CIDRS)
    assert token["allowed_cidrs"] == CIDRS
    assert get_token(extended_client, tenant, token["id"])["allowed_cidrs"] == CIDRS

    statuses = {
        address: install(
            extended_client, tenant.org, tenant.registry, token["token"], forwarded_for=address
        ).status_code
        for address in INSIDE + OUTSIDE
    }
    assert statuses == {**dict.fromkeys(INSIDE, 200), **dict.fromkeys(OUTSIDE, 401)}

    events = audit_events(
        extended_client, tenant.org, tenant.auth(), refused=len(OUTSIDE), event_type=REFUSED
    )
    assert Counter(event["context"]["client_ip"] for event in events) == Counter(OUTSIDE)
    assert {event["data"]["reason"] for event in events} == {"ip_not_allowed"}


@pytest.mark.parametrize(
    ("forwarded_for", "status"),
    [
        ("192.0.2.1, 127.0.0.1", 200),  # a trusted proxy's own hop is skipped
        ("198.51.100.7, 192.0.2.1", 200),  # what the client claimed before our proxy: ignored
        ("192.0.2.1, 198.51.100.7", 401),  # the proxy saw 198.51.100.7: a claimed 192.0.2.1
        ("::ffff:192.0.2.1", 200),  # an IPv4-mapped IPv6 address is its IPv4 address
        ("not-an-address", 401),  # unparseable: the socket's 127.0.0.1 is the client
    ],
)
def test_forwarded_for_is_read_from_the_right_behind_a_trusted_proxy(
    extended_client: httpx.Client, extended_tenant: Tenant, forwarded_for: str, status: int
) -> None:
    token = create_token(extended_client, extended_tenant, allowed_cidrs=["192.0.2.0/24"])
    response = install(
        extended_client,
        extended_tenant.org,
        extended_tenant.registry,
        token["token"],
        forwarded_for=forwarded_for,
    )
    assert response.status_code == status, response.text


def test_without_trusted_proxies_forwarded_for_is_ignored(
    client: httpx.Client, tenant: Tenant
) -> None:
    remote = create_token(client, tenant, allowed_cidrs=["192.0.2.0/24"])
    response = install(
        client, tenant.org, tenant.registry, remote["token"], forwarded_for="192.0.2.1"
    )
    assert response.status_code == 401

    loopback = create_token(client, tenant, allowed_cidrs=["127.0.0.1/32"])
    response = install(
        client, tenant.org, tenant.registry, loopback["token"], forwarded_for="198.51.100.7"
    )
    assert response.status_code == 200, response.text
    assert get_token(client, tenant, loopback["id"])["last_used_ip"] == "127.0.0.1"

    events = audit_events(client, tenant.org, tenant.auth(), refused=1, event_type=REFUSED)
    assert refusals(events) == Counter({(remote["id"], "ip_not_allowed"): 1})
    assert events[0]["context"]["client_ip"] == "127.0.0.1"
    # A refused use is not a use.
    assert get_token(client, tenant, remote["id"])["last_used_at"] is None


def test_cidrs_can_be_changed_and_removed(client: httpx.Client, tenant: Tenant) -> None:
    token = create_token(client, tenant)
    assert token["allowed_cidrs"] is None
    url = token_url(tenant, token["id"])
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 200

    limited = client.post(url, headers=tenant.auth(), json={"allowed_cidrs": ["192.0.2.0/24"]})
    assert limited.json()["allowed_cidrs"] == ["192.0.2.0/24"]
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 401

    widened = client.post(url, headers=tenant.auth(), json={"allowed_cidrs": ["127.0.0.0/8"]})
    assert widened.json()["allowed_cidrs"] == ["127.0.0.0/8"]
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 200

    client.post(url, headers=tenant.auth(), json={"allowed_cidrs": ["192.0.2.0/24"]})
    removed = client.post(url, headers=tenant.auth(), json={"allowed_cidrs": None})
    assert removed.json()["allowed_cidrs"] is None
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 200

    emptied = client.post(url, headers=tenant.auth(), json={"allowed_cidrs": []})
    assert emptied.status_code == 200
    assert emptied.json()["allowed_cidrs"] is None  # [] means anywhere, as null does


BAD_CIDRS: list[Any] = [
    ["not-a-cidr"],
    ["192.0.2.0/33"],
    ["2001:db8::/129"],
    ["256.0.0.0/8"],
    [""],
    ["10.0.0.0/8", "nope"],
    "192.0.2.0/24",  # a string, not a list
    [1],
    [None],
    {"cidr": "192.0.2.0/24"},
    [f"10.0.{i}.0/24" for i in range(101)],  # more than 100
]


@pytest.mark.parametrize("value", BAD_CIDRS, ids=lambda value: repr(value)[:40])
def test_invalid_cidrs_are_422_on_create_and_update(
    client: httpx.Client, tenant: Tenant, value: Any
) -> None:
    created = client.post(
        tenant.tokens_path, headers=tenant.auth(), json={"description": "x", "allowed_cidrs": value}
    )
    assert created.status_code == 422, created.text
    assert {"field": "allowed_cidrs", "code": "invalid"} in created.json()["errors"]
    assert client.get(tenant.tokens_path, headers=tenant.auth()).json() == []

    token = create_token(client, tenant, allowed_cidrs=["127.0.0.1/32"])
    updated = client.post(
        token_url(tenant, token["id"]), headers=tenant.auth(), json={"allowed_cidrs": value}
    )
    assert updated.status_code == 422, updated.text
    assert get_token(client, tenant, token["id"])["allowed_cidrs"] == ["127.0.0.1/32"]


# --------------------------------------------------------------------------- rotation


def test_rotation_returns_a_new_secret_for_the_same_token(
    client: httpx.Client, tenant: Tenant
) -> None:
    original = create_token(
        client,
        tenant,
        description="fleet",
        expires_at="2031-01-01T00:00:00Z",
        allowed_cidrs=["127.0.0.0/8"],
    )
    response = rotate(client, tenant, original["id"])
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert list(rotated) == [*TOKEN_KEYS, "token"]
    assert rotated["token"].startswith("bkpt_")
    assert rotated["token"] != original["token"]
    for key in ("id", "graphql_id", "description", "url", "created_at", "created_by"):
        assert rotated[key] == original[key]
    for key in ("organization", "registry", "expires_at", "allowed_cidrs"):
        assert rotated[key] == original[key]

    # The new secret is shown this once: get and list never carry it.
    fetched = client.get(token_url(tenant, original["id"]), headers=tenant.auth())
    listed = client.get(tenant.tokens_path, headers=tenant.auth())
    for text in (fetched.text, listed.text):
        assert rotated["token"] not in text
        assert original["token"] not in text
    assert "token" not in fetched.json()
    assert [item["id"] for item in listed.json()] == [original["id"]]
    assert all("token" not in item for item in listed.json())

    # Without a grace period the old secret stops at once; the new one works.
    assert install(client, tenant.org, tenant.registry, original["token"]).status_code == 401
    assert install(client, tenant.org, tenant.registry, rotated["token"]).status_code == 200
    events = audit_events(client, tenant.org, tenant.auth(), refused=1, token=original["id"])
    assert refusals(events) == Counter({(original["id"], "rotated_out"): 1})
    rotations = [event for event in events if event["type"] == "REGISTRY_TOKEN_ROTATED"]
    assert [event["data"] for event in rotations] == [{"grace_period_seconds": 0}]


def test_an_explicit_zero_grace_refuses_the_old_secret_at_once(
    client: httpx.Client, tenant: Tenant
) -> None:
    token = create_token(client, tenant)
    rotated = rotate(client, tenant, token["id"], {"grace_period_seconds": 0}).json()
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 401
    assert install(client, tenant.org, tenant.registry, rotated["token"]).status_code == 200


def test_grace_period_edges_with_a_controllable_clock(
    client: httpx.Client, tenant: Tenant, local: InProcess
) -> None:
    grace = 600
    token = create_token(client, tenant)
    old = token["token"]
    caller = local.services.auth.authenticate(f"Bearer {tenant.tokens['rw']}")
    retired_at = local.clock.now
    rotated = local.services.registry_tokens.rotate(
        caller, tenant.org, tenant.registry, token["id"], grace, CONTEXT
    )
    new = rotated.secret
    assert str(rotated.token.id) == token["id"]
    end = retired_at + timedelta(seconds=grace)

    for moment in (retired_at, end - MS):
        local.clock.now = moment
        assert local.authorize(tenant.org, tenant.registry, old).slug == tenant.registry
        assert local.authorize(tenant.org, tenant.registry, new).slug == tenant.registry
    for moment in (end, end + MS):
        local.clock.now = moment
        local.refused(tenant.org, tenant.registry, old)
        assert local.authorize(tenant.org, tenant.registry, new).slug == tenant.registry

    events = audit_events(client, tenant.org, tenant.auth(), token=token["id"])
    assert refusals(events) == Counter({(token["id"], "rotated_out"): 2})
    assert [event["type"] for event in events if event["type"] != REFUSED] == [
        "REGISTRY_TOKEN_ROTATED",
        "REGISTRY_TOKEN_CREATED",
    ]


def test_grace_period_in_real_time(client: httpx.Client, tenant: Tenant) -> None:
    token = create_token(client, tenant)
    started = datetime.now(UTC)
    response = rotate(client, tenant, token["id"], {"grace_period_seconds": 2})
    assert response.status_code == 200, response.text
    new = response.json()["token"]
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 200
    assert install(client, tenant.org, tenant.registry, new).status_code == 200
    assert audit_events(client, tenant.org, tenant.auth(), event_type=REFUSED) == []

    wait_until(started + timedelta(seconds=2, milliseconds=300))
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 401
    assert install(client, tenant.org, tenant.registry, new).status_code == 200
    events = audit_events(client, tenant.org, tenant.auth(), refused=1, event_type=REFUSED)
    assert refusals(events) == Counter({(token["id"], "rotated_out"): 1})


@pytest.mark.parametrize("grace", [-1, MAX_GRACE + 1, "10", True, 1.5, [10], {"s": 1}], ids=repr)
def test_grace_period_out_of_bounds_is_422(
    client: httpx.Client, tenant: Tenant, grace: Any
) -> None:
    token = create_token(client, tenant)
    response = rotate(client, tenant, token["id"], {"grace_period_seconds": grace})
    assert response.status_code == 422, response.text
    assert {"field": "grace_period_seconds", "code": "invalid"} in response.json()["errors"]
    # Nothing rotated: the secret still works and no rotation was recorded.
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 200
    events = audit_events(client, tenant.org, tenant.auth(), event_type="REGISTRY_TOKEN_ROTATED")
    assert events == []


def test_grace_period_bounds_are_inclusive(client: httpx.Client, tenant: Tenant) -> None:
    token = create_token(client, tenant)
    longest = rotate(client, tenant, token["id"], {"grace_period_seconds": MAX_GRACE})
    assert longest.status_code == 200, longest.text
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 200
    assert install(client, tenant.org, tenant.registry, longest.json()["token"]).status_code == 200


def test_rotate_needs_write_scope_and_a_live_token(
    client: httpx.Client, seeder: Seeder, tenant: Tenant
) -> None:
    token = create_token(client, tenant)
    reader = seeder.api_token(tenant.email, ("read_registries",))
    forbidden = client.post(f"{token_url(tenant, token['id'])}/rotate", headers=bearer(reader))
    assert forbidden.status_code == 403
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 200

    client.delete(token_url(tenant, token["id"]), headers=tenant.auth())
    assert rotate(client, tenant, token["id"]).status_code == 404
    unknown = "0191b6a2-aa51-70d0-8a5f-aabce115b0fd"
    assert rotate(client, tenant, unknown).status_code == 404


# --------------------------------------------------------------------------- usage


def test_usage_is_written_at_most_once_per_interval(
    client: httpx.Client, tenant: Tenant, local: InProcess
) -> None:
    interval = timedelta(seconds=local.services.settings.usage_write_interval_seconds)
    assert interval > timedelta(0)
    token = create_token(client, tenant)
    assert (token["last_used_at"], token["last_used_ip"]) == (None, None)
    secret = token["token"]

    def used() -> tuple[str | None, str | None]:
        body = get_token(client, tenant, token["id"])
        return body["last_used_at"], body["last_used_ip"]

    start = local.clock.now + timedelta(days=1)
    local.clock.now = start
    local.authorize(tenant.org, tenant.registry, secret, RequestContext("203.0.113.1", "pip"))
    assert used() == (iso(start), "203.0.113.1")

    local.clock.now = start + interval  # still within the interval: not rewritten
    local.authorize(tenant.org, tenant.registry, secret, RequestContext("203.0.113.2", "pip"))
    assert used() == (iso(start), "203.0.113.1")

    local.clock.now = start + interval + MS  # past it: written
    local.authorize(tenant.org, tenant.registry, secret, RequestContext("2001:db8::2", "pip"))
    assert used() == (iso(start + interval + MS), "2001:db8::2")


def test_usage_through_the_api(client: httpx.Client, tenant: Tenant) -> None:
    token = create_token(client, tenant)
    before = ms(datetime.now(UTC))
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 200
    after = datetime.now(UTC)
    body = get_token(client, tenant, token["id"])
    assert before <= parse_ts(body["last_used_at"]) <= after
    assert body["last_used_ip"] == "127.0.0.1"
    listed = client.get(tenant.tokens_path, headers=tenant.auth()).json()
    assert listed[0]["last_used_at"] == body["last_used_at"]


def test_usage_interval_on_a_in_process_server(
    extended_client: httpx.Client, extended_tenant: Tenant
) -> None:
    """The extended server writes usage at most once every two seconds."""
    tenant = extended_tenant
    token = create_token(extended_client, tenant)

    def use(address: str) -> None:
        response = install(
            extended_client, tenant.org, tenant.registry, token["token"], forwarded_for=address
        )
        assert response.status_code == 200, response.text

    def used() -> tuple[str | None, str | None]:
        body = get_token(extended_client, tenant, token["id"])
        return body["last_used_at"], body["last_used_ip"]

    use("198.51.100.1")
    first = used()
    assert first[1] == "198.51.100.1"
    assert first[0] is not None
    use("198.51.100.2")  # well within the interval
    assert used() == first
    wait_until(parse_ts(first[0]) + timedelta(milliseconds=2100))
    use("2001:db8::7")
    second = used()
    assert second[1] == "2001:db8::7"
    assert second[0] is not None
    assert parse_ts(second[0]) > parse_ts(first[0]) + timedelta(seconds=2)


# --------------------------------------------------------------------------- audit log


def test_audit_records_every_change_with_actor_time_address_and_agent(
    client: httpx.Client, tenant: Tenant
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    agent = {"User-Agent": "lifecycle-tests/1.0"}
    headers = {**tenant.auth(), **agent}
    token = create_token(client, tenant, user_agent="lifecycle-tests/1.0", description="audited")
    url = token_url(tenant, token["id"])
    assert client.post(url, headers=headers, json={"description": "renamed"}).status_code == 200
    # No change, no event.
    assert client.post(url, headers=headers, json={"description": "renamed"}).status_code == 200
    rotated = client.post(f"{url}/rotate", headers=headers, json={"grace_period_seconds": 5})
    assert rotated.status_code == 200
    assert client.delete(url, headers=headers).status_code == 200
    finished = datetime.now(UTC) + timedelta(seconds=1)

    events = audit_events(client, tenant.org, tenant.auth(), token=token["id"])
    assert [event["type"] for event in events] == [
        "REGISTRY_TOKEN_DELETED",
        "REGISTRY_TOKEN_ROTATED",
        "REGISTRY_TOKEN_UPDATED",
        "REGISTRY_TOKEN_CREATED",
    ]
    for event in events:
        assert list(event) == [
            "id",
            "type",
            "occurred_at",
            "actor",
            "subject",
            "registry",
            "data",
            "context",
        ]
        assert event["actor"] == {"type": "user", "id": str(tenant.user_id), "name": "Test User"}
        assert event["subject"]["type"] == "RegistryToken"
        assert event["subject"]["id"] == token["id"]
        assert event["registry"] == {"id": token["registry"]["id"], "slug": tenant.registry}
        assert event["context"] == {"client_ip": "127.0.0.1", "user_agent": "lifecycle-tests/1.0"}
        assert started <= parse_ts(event["occurred_at"]) <= finished
    occurred = [parse_ts(event["occurred_at"]) for event in events]
    assert occurred == sorted(occurred, reverse=True)  # newest first
    deleted, rotation, update, creation = events
    assert deleted["data"] == {}
    assert creation["data"]["description"] == "audited"
    assert update["data"]["changed"] == ["description"]
    assert update["data"]["description"] == "renamed"
    assert rotation["data"] == {"grace_period_seconds": 5}
    assert_no_secret(events, [token["token"], rotated.json()["token"], tenant.tokens["rw"]])


def test_every_refused_use_is_recorded_exactly_once(
    client: httpx.Client, seeder: Seeder, tenant: Tenant, local: InProcess
) -> None:
    other = seeder.services.registries.create(tenant.org, "Other", slug=unique("reg"))
    org, registry = tenant.org, tenant.registry
    secrets = [tenant.tokens["rw"]]

    expiring = create_token(client, tenant, expires_at=iso(datetime.now(UTC) + timedelta(hours=1)))
    limited = create_token(client, tenant, allowed_cidrs=["192.0.2.0/24"])
    revoked = create_token(client, tenant)
    foreign = create_token(client, tenant)  # of the registry, presented at ``other``
    rotated = create_token(client, tenant)
    fine = create_token(client, tenant)
    new_secret = rotate(client, tenant, rotated["id"]).json()["token"]
    assert client.delete(token_url(tenant, revoked["id"]), headers=tenant.auth()).status_code == 200
    secrets += [t["token"] for t in (expiring, limited, revoked, foreign, rotated, fine)]
    secrets.append(new_secret)

    local.clock.now = parse_ts(expiring["expires_at"]) + MS
    for _ in range(2):
        local.refused(org, registry, expiring["token"])
    for _ in range(2):
        assert install(client, org, registry, limited["token"]).status_code == 401
    for _ in range(3):
        assert install(client, org, registry, revoked["token"]).status_code == 401
    assert install(client, org, other.slug, foreign["token"]).status_code == 401
    assert install(client, org, "no-such-registry", foreign["token"]).status_code == 401
    assert install(client, org, registry, rotated["token"]).status_code == 401
    # Uses that are allowed, and noise nothing can be attributed to, record no refusal.
    assert install(client, org, registry, foreign["token"]).status_code == 200
    assert install(client, org, registry, new_secret).status_code == 200
    assert install(client, org, registry, fine["token"]).status_code == 200
    assert (
        install(client, org, registry, generate_secret(SecretKind.REGISTRY_TOKEN)).status_code
        == 401
    )
    assert install(client, org, registry, "bkpt_not-a-real-token").status_code == 401

    events = audit_events(client, org, tenant.auth(), refused=10)
    assert refusals(events) == Counter(
        {
            (expiring["id"], "expired"): 2,
            (limited["id"], "ip_not_allowed"): 2,
            (revoked["id"], "revoked"): 3,
            (foreign["id"], "wrong_registry"): 2,
            (rotated["id"], "rotated_out"): 1,
        }
    )
    wrong = [
        event
        for event in events
        if event["type"] == REFUSED and event["data"]["reason"] == "wrong_registry"
    ]
    assert sorted(event["data"]["requested_registry"] for event in wrong) == sorted(
        [f"{org}/{other.slug}", f"{org}/no-such-registry"]
    )
    for event in events:
        if event["type"] == REFUSED:
            assert event["actor"]["type"] == "registry_token"
            assert event["actor"]["id"] == event["subject"]["id"]
            assert event["registry"]["slug"] == registry  # the token's own registry
            assert event["context"]["user_agent"] in ("pip/24.0", "pip/test")
    assert_no_secret(events, secrets)


def test_audit_filters(client: httpx.Client, seeder: Seeder, tenant: Tenant) -> None:
    other = seeder.services.registries.create(tenant.org, "Other", slug=unique("reg"))
    first = create_token(client, tenant)
    second = create_token(client, tenant)
    elsewhere = create_token(client, tenant, registry=other.slug)
    rotate(client, tenant, first["id"])
    assert install(client, tenant.org, tenant.registry, first["token"]).status_code == 401

    def ids(**filters: str) -> list[str]:
        pages = audit_pages(client, tenant.org, tenant.auth(), filters)
        return [event["id"] for page in pages for event in page]

    everything = audit_events(client, tenant.org, tenant.auth(), refused=1)
    assert len(everything) == 5

    by_registry = audit_events(client, tenant.org, tenant.auth(), registry=other.slug)
    assert [event["subject"]["id"] for event in by_registry] == [elsewhere["id"]]
    mine = audit_events(client, tenant.org, tenant.auth(), registry=tenant.registry)
    assert {event["subject"]["id"] for event in mine} == {first["id"], second["id"]}
    assert len(mine) == 4

    by_token = audit_events(client, tenant.org, tenant.auth(), token=first["id"])
    assert [event["type"] for event in by_token] == [
        REFUSED,
        "REGISTRY_TOKEN_ROTATED",
        "REGISTRY_TOKEN_CREATED",
    ]
    created = audit_events(client, tenant.org, tenant.auth(), event_type="REGISTRY_TOKEN_CREATED")
    assert [event["subject"]["id"] for event in created] == [
        elsewhere["id"],
        second["id"],
        first["id"],
    ]
    assert ids(token=second["id"], event_type="REGISTRY_TOKEN_ROTATED") == []
    assert ids(registry=other.slug, event_type="REGISTRY_TOKEN_CREATED") == [by_registry[0]["id"]]

    for bad in ({"token": "not-a-uuid"}, {"event_type": "REGISTRY_TOKEN_EATEN"}):
        response = client.get(audit_path(tenant.org), headers=tenant.auth(), params=bad)
        assert response.status_code == 422, response.text
    missing = client.get(
        audit_path(tenant.org), headers=tenant.auth(), params={"registry": "no-such-registry"}
    )
    assert missing.status_code == 404


def test_audit_cursor_pagination_walks_every_event_once(
    client: httpx.Client, tenant: Tenant
) -> None:
    token = create_token(client, tenant)
    url = token_url(tenant, token["id"])
    for number in range(6):
        client.post(url, headers=tenant.auth(), json={"description": f"take {number}"})
    everything = audit_events(client, tenant.org, tenant.auth())
    assert len(everything) == 7

    pages = audit_pages(client, tenant.org, tenant.auth(), per_page=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    walked = [event["id"] for page in pages for event in page]
    assert walked == [event["id"] for event in everything]
    assert len(set(walked)) == 7

    first = client.get(audit_path(tenant.org), headers=tenant.auth(), params={"per_page": 3})
    assert first.json()["links"]["prev"] is None
    # Back from the last page with links.prev: every event again, once.
    response = client.get(
        audit_path(tenant.org),
        headers=tenant.auth(),
        params={"per_page": 3, "after": pages[1][-1]["id"]},
    )
    backwards: list[str] = []
    while True:
        body = response.json()
        backwards = [event["id"] for event in body["items"]] + backwards
        if body["links"]["prev"] is None:
            break
        response = client.get(body["links"]["prev"], headers=tenant.auth())
        assert response.status_code == 200, response.text
    assert backwards == walked

    # Filters survive in the links.
    updates = audit_pages(
        client,
        tenant.org,
        tenant.auth(),
        {"event_type": "REGISTRY_TOKEN_UPDATED"},
        per_page=4,
    )
    assert [len(page) for page in updates] == [4, 2]
    assert {event["type"] for page in updates for event in page} == {"REGISTRY_TOKEN_UPDATED"}


def test_audit_needs_read_registries_and_a_visible_organization(
    client: httpx.Client, seeder: Seeder, tenant: Tenant
) -> None:
    create_token(client, tenant)
    writer = seeder.api_token(tenant.email, ("write_registries",))
    forbidden = client.get(audit_path(tenant.org), headers=bearer(writer))
    assert forbidden.status_code == 403
    assert forbidden.json() == {
        "message": "Your access token doesn't have the read_registries scope"
    }
    reader = seeder.api_token(tenant.email, ("read_registries",))
    assert client.get(audit_path(tenant.org), headers=bearer(reader)).status_code == 200

    stranger = seeder.tenant()
    hidden = client.get(audit_path(tenant.org), headers=stranger.auth())
    assert hidden.status_code == 404
    assert "message" in hidden.json()
    assert client.get(audit_path("no_such_org"), headers=tenant.auth()).status_code == 404
    assert client.get(audit_path(tenant.org)).status_code == 401
    # The stranger's own log holds nothing of ours.
    assert audit_events(client, stranger.org, stranger.auth()) == []


# --------------------------------------------------------------------------- leak response


def check_tokens(*calls: tuple[str, ...]) -> list[tuple[int, str]]:
    """``registry-tokens check-token ARGS`` for each ``calls`` entry, run side by side with
    no database configured; (exit code, stdout) of each, in order."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_TOKENS_")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "registry_tokens", "check-token", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in calls
    ]
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode in (0, 1), stderr
        results.append((process.returncode, stdout))
    return results


def tampered(secret: str) -> str:
    """``secret`` with one character of its random part changed."""
    position = 10
    replacement = "A" if secret[position] != "A" else "B"
    return secret[:position] + replacement + secret[position + 1 :]


def test_check_token_tells_a_real_token_from_a_tampered_one(
    client: httpx.Client, tenant: Tenant
) -> None:
    secret = create_token(client, tenant)["token"]
    real, broken, noise, text = check_tokens(
        (secret, "--json"), (tampered(secret), "--json"), ("hello", "--json"), (secret,)
    )
    assert real[0] == 0
    assert json.loads(real[1]) == {"valid": True, "kind": "registry_token"}
    assert broken[0] == 1
    assert json.loads(broken[1]) == {"valid": False, "kind": None}
    assert noise[0] == 1
    assert json.loads(noise[1]) == {"valid": False, "kind": None}
    assert text[0] == 0
    assert "registry token" in text[1]
    # The same check, in process, on more ways to break a token (each run costs seconds).
    assert secret_kind(tenant.tokens["rw"]) is SecretKind.API_ACCESS_TOKEN
    for candidate in (secret[:-1], secret + "0", "bkxx" + secret[4:], secret.upper()):
        assert secret_kind(candidate) is None, candidate


def sign(key: ec.EllipticCurvePrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


def report_body(*tokens: str) -> bytes:
    return json.dumps(
        [
            {
                "token": token,
                "type": "buildkite_registry_token",
                "url": "https://github.com/octo/leaky/blob/main/.pip.conf",
                "source": "content",
            }
            for token in tokens
        ]
    ).encode()


def report(
    client: httpx.Client,
    body: bytes,
    signature: str | None,
    key_id: str | None = "k1",
) -> httpx.Response:
    headers = {"Content-Type": "application/json", "User-Agent": "GitHub-Secret-Scanning"}
    if key_id is not None:
        headers["Github-Public-Key-Identifier"] = key_id
    if signature is not None:
        headers["Github-Public-Key-Signature"] = signature
    return client.post("/secret-scanning/github", content=body, headers=headers)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_a_reported_live_token_is_revoked_at_once(
    extended_client: httpx.Client,
    extended_tenant: Tenant,
    signing_key: ec.EllipticCurvePrivateKey,
) -> None:
    tenant, http = extended_tenant, extended_client
    leaked = create_token(http, tenant)
    bystander = create_token(http, tenant)
    assert install(http, tenant.org, tenant.registry, leaked["token"]).status_code == 200

    body = report_body(leaked["token"])
    response = report(http, body, sign(signing_key, body))
    assert response.status_code == 200, response.text
    assert response.json() == [
        {
            "token_hash": sha256_hex(leaked["token"]),
            "token_type": "buildkite_registry_token",
            "label": "true_positive",
        }
    ]
    assert leaked["token"] not in response.text
    assert leaked["token"].split("_", 1)[1] not in response.text

    assert install(http, tenant.org, tenant.registry, leaked["token"]).status_code == 401
    assert http.get(token_url(tenant, leaked["id"]), headers=tenant.auth()).status_code == 404
    listed = http.get(tenant.tokens_path, headers=tenant.auth()).json()
    assert [item["id"] for item in listed] == [bystander["id"]]
    assert install(http, tenant.org, tenant.registry, bystander["token"]).status_code == 200

    events = audit_events(http, tenant.org, tenant.auth(), refused=1, token=leaked["id"])
    leaks = [event for event in events if event["type"] == "REGISTRY_TOKEN_LEAK_REPORTED"]
    assert len(leaks) == 1
    assert leaks[0]["actor"]["type"] == "secret_scanner"
    assert leaks[0]["data"]["live"] is True
    assert leaks[0]["data"]["url"] == "https://github.com/octo/leaky/blob/main/.pip.conf"
    assert refusals(events) == Counter({(leaked["id"], "revoked"): 1})
    assert_no_secret(events, [leaked["token"], bystander["token"]])

    # Reported again: no longer live.
    again = report(http, body, sign(signing_key, body))
    assert again.json()[0]["label"] == "false_positive"


def test_reports_of_dead_tokens_and_noise_are_false_positives(
    extended_client: httpx.Client,
    extended_tenant: Tenant,
    signing_key: ec.EllipticCurvePrivateKey,
) -> None:
    tenant, http = extended_tenant, extended_client
    deleted = create_token(http, tenant)
    assert http.delete(token_url(tenant, deleted["id"]), headers=tenant.auth()).status_code == 200
    unknown = generate_secret(SecretKind.REGISTRY_TOKEN)
    noise = ["hello world", tampered(unknown), "bkpt_" + "x" * 36]
    body = report_body(deleted["token"], unknown, *noise)
    response = report(http, body, sign(signing_key, body))
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [answer["label"] for answer in answers] == ["false_positive"] * 5
    assert [answer["token_hash"] for answer in answers] == [
        sha256_hex(token) for token in (deleted["token"], unknown, *noise)
    ]
    leaks = audit_events(http, tenant.org, tenant.auth(), event_type="REGISTRY_TOKEN_LEAK_REPORTED")
    assert all(event["data"]["live"] is False for event in leaks)


def test_a_leaked_retired_secret_ends_its_grace_but_keeps_the_token(
    extended_client: httpx.Client,
    extended_tenant: Tenant,
    signing_key: ec.EllipticCurvePrivateKey,
) -> None:
    tenant, http = extended_tenant, extended_client
    token = create_token(http, tenant)
    new = rotate(http, tenant, token["id"], {"grace_period_seconds": 600}).json()["token"]
    assert install(http, tenant.org, tenant.registry, token["token"]).status_code == 200

    body = report_body(token["token"])
    response = report(http, body, sign(signing_key, body))
    assert response.json()[0]["label"] == "true_positive"
    assert install(http, tenant.org, tenant.registry, token["token"]).status_code == 401
    assert install(http, tenant.org, tenant.registry, new).status_code == 200
    assert http.get(token_url(tenant, token["id"]), headers=tenant.auth()).status_code == 200


def test_unsigned_or_badly_signed_reports_revoke_nothing(
    extended_client: httpx.Client,
    extended_tenant: Tenant,
    signing_key: ec.EllipticCurvePrivateKey,
) -> None:
    tenant, http = extended_tenant, extended_client
    token = create_token(http, tenant)
    body = report_body(token["token"])
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    attempts = {
        "signed by another key": report(http, body, sign(stranger_key, body)),
        "signature of another body": report(http, body, sign(signing_key, body + b" ")),
        "unknown key id": report(http, body, sign(signing_key, body), key_id="k2"),
        "no key id": report(http, body, sign(signing_key, body), key_id=None),
        "no signature": report(http, body, None),
        "signature not base64": report(http, body, "not base64!"),
        "empty signature": report(http, body, ""),
    }
    for name, response in attempts.items():
        assert response.status_code == 401, name
        assert "message" in response.json(), name
        assert token["token"] not in response.text
    assert install(http, tenant.org, tenant.registry, token["token"]).status_code == 200
    assert http.get(token_url(tenant, token["id"]), headers=tenant.auth()).status_code == 200
    assert (
        audit_events(http, tenant.org, tenant.auth(), event_type="REGISTRY_TOKEN_LEAK_REPORTED")
        == []
    )


def test_secret_scanning_is_404_without_a_keys_file(
    client: httpx.Client, tenant: Tenant, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    token = create_token(client, tenant)
    body = report_body(token["token"])
    response = report(client, body, sign(signing_key, body))
    assert response.status_code == 404
    assert "message" in response.json()
    assert install(client, tenant.org, tenant.registry, token["token"]).status_code == 200


# --------------------------------------------------------------------------- the seed


def test_the_seed_curl_calls_still_work(client: httpx.Client, tenant: Tenant) -> None:
    headers = {**tenant.auth(), "Content-Type": "application/json"}
    created = client.post(
        tenant.tokens_path, headers=headers, content='{\n    "description": "Usher"\n    }'
    )
    assert created.status_code == 200, created.text
    assert list(created.json())[: len(SEED_KEYS)] == SEED_KEYS
    assert list(created.json()) == [*TOKEN_KEYS, "token"]
    token_id = created.json()["id"]

    listed = client.get(tenant.tokens_path, headers=headers)
    assert listed.status_code == 200
    assert [list(item) for item in listed.json()] == [TOKEN_KEYS]

    fetched = client.get(token_url(tenant, token_id), headers=tenant.auth())
    assert fetched.status_code == 200
    assert list(fetched.json()) == TOKEN_KEYS
    assert fetched.json()["description"] == "Usher"
    assert (fetched.json()["expires_at"], fetched.json()["allowed_cidrs"]) == (None, None)

    updated = client.post(
        token_url(tenant, token_id), headers=headers, content='{\n    "description": "Usher"\n    }'
    )
    assert updated.status_code == 200
    assert list(updated.json()) == TOKEN_KEYS

    deleted = client.delete(token_url(tenant, token_id), headers=tenant.auth())
    assert deleted.status_code == 200
    assert client.get(token_url(tenant, token_id), headers=tenant.auth()).status_code == 404
