"""go-buildkite v5's ``OrganizationsService.List``, ``RateLimitService.Get`` and
``AccessTokensService`` against the live server, request for request (issue #12).

The client is rebuilt as in ``test_go_client_contract`` (its module docstring lists what
``NewRequest``, ``Do``, ``checkResponse`` and ``populatePageValues`` do); what these
services add, read from github.com/buildkite/go-buildkite:

``organizations.go`` (v5; the indexed v4 file has the same ``List``, the root
``organizations_test.go`` shows v5's plain-string fields): ``List(ctx, opt
*OrganizationListOptions)`` is GET ``v2/organizations`` through ``addOptions`` (nil options:
no query; ``ListOptions{Page, PerPage}`` otherwise, ``omitempty``, keys sorted) into
``[]Organization`` (the fields ``test_go_client_contract.Organization`` lists).

``rate_limits.go``: ``Get(ctx, org)`` is GET ``v2/organizations/{org}/rate_limit`` into
``RateLimit{Scopes *RateLimitScopes `json:"scopes,omitempty"`}``,
``RateLimitScopes{GraphQL, REST *RateLimitDetails}`` (``graphql``, ``rest``) and
``RateLimitDetails{Current int64 current; Enforced bool enforced; Limit int64 limit;
Reset int64 reset; ResetAt time.Time reset_at}``. ``encoding/json`` reads an ``int64``
only from an integral JSON number, a ``time.Time`` only from an RFC 3339 string
(``null`` leaves either at zero), a pointer's ``null`` as nil.

``access_tokens.go``: ``Get`` is GET ``v2/access-token`` into ``AccessToken``; ``Revoke`` is
DELETE ``v2/access-token`` with ``Do(req, nil)`` (any 2xx).
"""

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from registry_tokens.settings import Settings
from tests.api.test_go_client_contract import (
    AccessToken,
    AccessTokenUser,
    GoClient,
    GoErrorResponse,
    GoResponse,
    Organization,
    Pages,
    assert_go_request,
    go_add_options,
    go_decode,
    go_decoder_decode,
    graphql_id_of,
    recent,
    tag,
)
from tests.harness import Seeder, Server, Tenant, in_process_server
from tests.ratelimits.test_rate_limits import WINDOW_SECONDS, limits, wait_for_fresh_window

T = TypeVar("T")
REDIS_URL = "redis://127.0.0.1:6379/0"
ORGANIZATION_KEYS = [
    "id",
    "graphql_id",
    "url",
    "web_url",
    "name",
    "slug",
    "pipelines_url",
    "agents_url",
    "emojis_url",
    "created_at",
]


# --- rate_limits.go's structs, and encoding/json for their int64 and time.Time ----------


@dataclass
class RateLimitDetails:
    current: int = field(default=0, metadata=tag("current"))
    enforced: bool = field(default=False, metadata=tag("enforced"))
    limit: int = field(default=0, metadata=tag("limit"))
    reset: int = field(default=0, metadata=tag("reset"))
    reset_at: datetime = field(default=datetime.min, metadata=tag("reset_at"))


@dataclass
class RateLimitScopes:
    graphql: RateLimitDetails | None = field(default=None, metadata=tag("graphql"))
    rest: RateLimitDetails | None = field(default=None, metadata=tag("rest"))


@dataclass
class RateLimit:
    scopes: RateLimitScopes | None = field(default=None, metadata=tag("scopes"))


def rate_limit_get(go: GoClient, org: str) -> tuple[RateLimit, GoResponse]:
    """``RateLimitService.Get``."""
    result = go.do_without_body(go.new_request("GET", f"v2/organizations/{org}/rate_limit", None))
    return go_decode(RateLimit, go_decoder_decode(result.http.content)), result


def rest_of(status: RateLimit) -> RateLimitDetails:
    """``status.Scopes.REST``, which must be there."""
    assert status.scopes is not None
    assert status.scopes.rest is not None
    return status.scopes.rest


def organizations_list(
    go: GoClient, page: int = 0, per_page: int = 0
) -> tuple[list[Organization], GoResponse]:
    """``OrganizationsService.List`` (``page``/``per_page`` 0: not set, so not sent)."""
    url = go_add_options("v2/organizations", page=page, per_page=per_page)
    return go.do_list(go.new_request("GET", url, None), Organization)


@pytest.fixture
def member(seeder: Seeder, tenant: Tenant) -> list[str]:
    """The tenant's user in two more organizations, named so that they sort after its own
    (``Org org_…``): the slugs in the order the list gives them."""
    slugs = [tenant.org]
    for name in ("Zebra Works", "Zeta Labs"):
        slug = tenant.org + ("_zebra" if name.startswith("Zebra") else "_zeta")
        seeder.services.organizations.create(slug, name)
        seeder.services.organizations.add_member(slug, tenant.email)
        slugs.append(slug)
    return slugs


@pytest.fixture
def go(server: Server, tenant: Tenant) -> Iterator[GoClient]:
    client = GoClient(server, tenant.tokens["rw"], max_retries=0)
    yield client
    client.close()


# --- OrganizationsService.List ------------------------------------------------------------


def test_organizations_list_decodes_every_organization_of_the_user(
    go: GoClient, server: Server, seeder: Seeder, tenant: Tenant, member: list[str]
) -> None:
    seeder.tenant()  # someone else's organization: never listed

    listed, response = organizations_list(go)
    assert_go_request(go.sent[-1], "GET", "v2/organizations", None)
    assert response.status == 200
    assert response.pages == Pages()
    assert [organization.slug for organization in listed] == member
    assert [organization.name for organization in listed] == [
        f"Org {tenant.org}",
        "Zebra Works",
        "Zeta Labs",
    ]
    for organization in listed:
        assert graphql_id_of(organization.graphql_id) == f"Organization---{organization.id}"
        assert organization.url == f"{server.base_url}/v2/organizations/{organization.slug}"
        assert organization.web_url == f"http://web.example.test/organizations/{organization.slug}"
        # Buildkite links pipelines, agents and emojis; there are none here: null, "" to Go.
        assert (organization.pipelines_url, organization.agents_url) == ("", "")
        assert organization.emojis_url == ""
        recent(organization.created_at)
        got, _ = go.organizations_get(organization.slug)
        assert got == organization
    # The keys in the order of Buildkite's docs, the unknown ones present as null.
    raw = json.loads(response.http.content)
    assert [list(item) for item in raw] == [ORGANIZATION_KEYS] * 3
    assert {item["pipelines_url"] for item in raw} == {None}


def test_organizations_list_pages_with_the_link_header_go_reads(
    go: GoClient, member: list[str]
) -> None:
    first, response = organizations_list(go, per_page=2)
    assert_go_request(go.sent[-1], "GET", "v2/organizations", None, query="per_page=2")
    assert [organization.slug for organization in first] == member[:2]
    assert response.pages == Pages(next_page=2, last_page=2)

    second, response = organizations_list(go, page=response.pages.next_page, per_page=2)
    assert_go_request(go.sent[-1], "GET", "v2/organizations", None, query="page=2&per_page=2")
    assert [organization.slug for organization in second] == member[2:]
    assert response.pages == Pages(prev_page=1, first_page=1)
    assert response.http.headers["Access-Control-Expose-Headers"] == "Link"

    beyond, response = organizations_list(go, page=3, per_page=2)
    assert beyond == []
    assert response.pages == Pages(prev_page=2, first_page=1)


def test_a_token_limited_to_organizations_lists_only_those_and_404s_the_rest(
    server: Server, seeder: Seeder, tenant: Tenant, member: list[str]
) -> None:
    limited = GoClient(
        server, seeder.api_token(tenant.email, ("read_registries",), orgs=(member[1],))
    )
    try:
        listed, _ = organizations_list(limited)
        assert [organization.slug for organization in listed] == [member[1]]
        for hidden in (member[0], member[2], "no_such_org"):
            for call in (limited.organizations_get, lambda slug: rate_limit_get(limited, slug)):
                with pytest.raises(GoErrorResponse) as raised:
                    call(hidden)
                assert raised.value.status == 404
                assert raised.value.message == "No organization found"
    finally:
        limited.close()


def test_organizations_list_refuses_without_a_valid_token(server: Server) -> None:
    for token in (None, "bkua_not-a-real-token"):
        client = GoClient(server, token)
        try:
            with pytest.raises(GoErrorResponse) as raised:
                organizations_list(client)
        finally:
            client.close()
        assert raised.value.status == 401
        assert raised.value.message


@pytest.mark.parametrize("query", ["page=-1", "page=x", "per_page=0", "page=1000001"])
def test_organizations_list_bad_pages_are_422(
    client: httpx.Client, tenant: Tenant, query: str
) -> None:
    response = client.get(f"/v2/organizations?{query}", headers=tenant.auth())
    assert response.status_code == 422
    assert response.json()["message"].startswith("Validation failed")


# --- RateLimitService.Get -----------------------------------------------------------------


def assert_window(details: RateLimitDetails, response: GoResponse) -> None:
    """``reset`` and ``reset_at`` name the same window end as ``RateLimit-Reset``."""
    assert 1 <= details.reset <= WINDOW_SECONDS
    assert str(details.reset) == response.http.headers["RateLimit-Reset"]
    end = details.reset_at.timestamp()
    assert end % WINDOW_SECONDS == 0, details.reset_at
    assert details.reset_at.tzinfo is not None
    assert math.ceil(end - time.time()) in (details.reset, details.reset - 1)


def test_rate_limit_get_reads_the_counters_and_counts_itself(tmp_path: Path) -> None:
    """Buildkite's docs exempt no REST request from its limit, so this one counts too:
    ``current`` includes it, and once the window is spent it is refused like any other."""
    env = limits(rate_limit_per_organization=8, rate_limit_per_user=100)
    with in_process_server(tmp_path, env=env) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant()
        go = GoClient(server, tenant.tokens["rw"], max_retries=0)
        try:
            wait_for_fresh_window()
            status, response = rate_limit_get(go, tenant.org)
            assert_go_request(go.sent[-1], "GET", f"v2/organizations/{tenant.org}/rate_limit", None)
            assert response.status == 200
            assert status.scopes is not None
            assert status.scopes.graphql is None  # no GraphQL API here
            rest = status.scopes.rest
            assert rest is not None
            assert (rest.limit, rest.current, rest.enforced) == (8, 1, True)
            assert_window(rest, response)
            assert response.http.headers["RateLimit-Remaining"] == "7"

            again, response = rate_limit_get(go, tenant.org)
            again_rest = rest_of(again)
            assert again_rest.current == 2

            for _ in range(3):  # other requests to the organization count in the same window
                go.registry_tokens_list(tenant.org, tenant.registry)
            after, response = rate_limit_get(go, tenant.org)
            after_rest = rest_of(after)
            assert after_rest.current == 6
            assert response.http.headers["RateLimit-Remaining"] == "2"

            # Requests outside the organization (the user, the token) are not its.
            go.access_tokens_get()
            last, _ = rate_limit_get(go, tenant.org)
            last_rest = rest_of(last)
            assert last_rest.current == 7

            rate_limit_get(go, tenant.org)  # the eighth: the last one admitted
            with pytest.raises(GoErrorResponse) as raised:
                rate_limit_get(go, tenant.org)
            assert raised.value.status == 429
            body = json.loads(raised.value.raw_body)
            assert (body["limit"], body["current"], body["scope"]) == (8, 9, "rest")
        finally:
            go.close()
            seeder.services.database.dispose()


def test_rate_limit_get_counts_exactly_in_redis(tmp_path: Path) -> None:
    env = limits(rate_limit_per_organization=50, redis_url=REDIS_URL)
    with in_process_server(tmp_path, env=env) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant()
        go = GoClient(server, tenant.tokens["rw"], max_retries=0)
        try:
            wait_for_fresh_window()
            currents = []
            for _ in range(3):
                status, response = rate_limit_get(go, tenant.org)
                status_rest = rest_of(status)
                currents.append(status_rest.current)
                assert_window(status_rest, response)
            assert currents == [1, 2, 3]
        finally:
            go.close()
            seeder.services.database.dispose()


def test_rate_limit_get_without_an_organization_limit_is_not_enforced(
    go: GoClient, tenant: Tenant
) -> None:
    """The shared test server counts nothing (limits 0): ``enforced`` false, as Buildkite
    says when it does not limit an organization."""
    status, response = rate_limit_get(go, tenant.org)
    assert response.status == 200
    rest = rest_of(status)
    assert (rest.limit, rest.current, rest.enforced) == (0, 0, False)
    assert rest.reset >= 1
    assert rest.reset_at > datetime.now(UTC) - timedelta(seconds=1)
    raw = json.loads(response.http.content)
    assert list(raw) == ["scopes"]
    assert list(raw["scopes"]) == ["rest"]
    assert list(raw["scopes"]["rest"]) == ["limit", "current", "reset", "reset_at", "enforced"]


# --- Rate-limit headers: Buildkite's names, per organization and per user ---------------


def test_headers_name_the_organization_and_the_user_as_buildkite_does(tmp_path: Path) -> None:
    env = limits(rate_limit_per_organization=20, rate_limit_per_user=4)
    with in_process_server(tmp_path, env=env) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant()
        try:
            with server.client(headers=tenant.auth(), timeout=30) as http:
                wait_for_fresh_window()
                first = http.get(tenant.tokens_path)
                assert first.status_code == 200
                assert first.headers["RateLimit-Scope"] == "rest"
                # RateLimit-*: the organization's window; RateLimit-User-*: the user's.
                assert (first.headers["RateLimit-Limit"], first.headers["RateLimit-Remaining"]) == (
                    "20",
                    "19",
                )
                assert first.headers["RateLimit-User-Limit"] == "4"
                assert first.headers["RateLimit-User-Remaining"] == "3"
                assert first.headers["RateLimit-User-Reset"] == first.headers["RateLimit-Reset"]

                # No organization in the path: RateLimit-* is the user's limit.
                user = http.get("/v2/access-token")
                assert user.status_code == 200
                assert (user.headers["RateLimit-Limit"], user.headers["RateLimit-Remaining"]) == (
                    "4",
                    "2",
                )
                assert user.headers["RateLimit-User-Remaining"] == "2"

                assert http.get(tenant.tokens_path).status_code == 200
                assert http.get(tenant.tokens_path).status_code == 200
                refused = http.get(tenant.tokens_path)
                # Over the user's limit, within the organization's.
                assert refused.status_code == 429
                assert refused.headers["RateLimit-User-Remaining"] == "0"
                assert refused.headers["RateLimit-Remaining"] == "16"
                assert refused.headers["Retry-After"] == refused.headers["RateLimit-Reset"]
                body = refused.json()
                assert (body["limit"], body["current"], body["scope"]) == (4, 5, "rest")
                assert "Please wait" in body["message"]

            # Without a valid token only the client's address counts: no RateLimit-User-*.
            with server.client(timeout=30) as http:
                nobody = http.get("/v2/organizations")
            assert nobody.status_code == 401
            assert not any(name.lower().startswith("ratelimit-user") for name in nobody.headers)
        finally:
            seeder.services.database.dispose()


def test_the_shipped_limits_are_buildkites() -> None:
    """Buildkite's REST API: 200 a minute per organization, 50 a minute per user."""
    defaults = {name: item.default for name, item in Settings.model_fields.items()}
    assert defaults["rate_limit_per_organization"] == 200
    assert defaults["rate_limit_per_user"] == 50
    assert defaults["rate_limit_window_seconds"] == 60


# --- AccessTokensService ------------------------------------------------------------------


def test_access_token_get_decodes_every_field_and_revoke_stops_it_at_once(
    server: Server, seeder: Seeder, tenant: Tenant
) -> None:
    issued = seeder.services.auth.issue(
        tenant.email, ("read_registries", "read_user"), description="CI <deploys> & co"
    )
    client = GoClient(server, issued.secret)
    try:
        token, response = client.access_tokens_get()
        assert_go_request(client.sent[-1], "GET", "v2/access-token", None)
        assert response.status == 200
        assert token == AccessToken(
            uuid=str(issued.token.id),
            scopes=["read_registries", "read_user"],
            description="CI <deploys> & co",
            created_at=recent(token.created_at),
            user=AccessTokenUser(name="Test User", email=tenant.email),
        )
        assert list(json.loads(response.http.content)) == [
            "uuid",
            "scopes",
            "description",
            "created_at",
            "user",
        ]
        assert organizations_list(client)[1].status == 200

        response = client.access_tokens_revoke()
        assert_go_request(client.sent[-1], "DELETE", "v2/access-token", None)
        assert response.status == 204
        assert response.http.content == b""

        # The very next request, to any endpoint, is refused.
        for call in (
            client.access_tokens_get,
            lambda: organizations_list(client),
            lambda: client.organizations_get(tenant.org),
            lambda: rate_limit_get(client, tenant.org),
            client.access_tokens_revoke,
        ):
            with pytest.raises(GoErrorResponse) as raised:
                call()
            assert raised.value.status == 401
            assert raised.value.message
    finally:
        client.close()
    # Other tokens of the same user are untouched.
    other = GoClient(server, tenant.tokens["rw"])
    try:
        assert other.access_tokens_get()[1].status == 200
    finally:
        other.close()
