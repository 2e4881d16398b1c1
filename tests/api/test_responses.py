"""What every response of the app shares, whichever door: redirects stay on this server,
HEAD answers as GET does, without the body."""

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import Seeder, Server, Tenant, in_process_server
from tests.package_helpers import (
    admin_tenant,
    basic,
    create_registry_token,
    registry_path,
    simple_path,
)

RATE_LIMITED = {
    "REGISTRY_TOKENS_RATE_LIMIT_PER_ORGANIZATION": "1000",
    "REGISTRY_TOKENS_RATE_LIMIT_PER_USER": "1000",
    "REGISTRY_TOKENS_RATE_LIMIT_PER_CLIENT": "1000",
}
# What may differ between two answers to the same request, a moment apart.
VOLATILE = {
    "date",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit-user-remaining",
    "ratelimit-user-reset",
    "x-request-id",  # a new one for every request that sends none
}
UNKNOWN_ID = "0191b6a2-aa51-70e5-b1d2-7c4b3e9e3c1a"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose rate limits count, so that REST answers carry ``RateLimit-*``."""
    with in_process_server(tmp_path_factory.mktemp("responses"), env=RATE_LIMITED) as server:
        yield server


@pytest.fixture(scope="module")
def limited_seeder(limited: Server) -> Seeder:
    return Seeder(limited)


@pytest.fixture
def http(limited: Server) -> Iterator[httpx.Client]:
    with limited.client() as client:
        yield client


# --- redirects ---------------------------------------------------------------------------


def test_the_trailing_slash_redirect_of_the_rest_api_ignores_the_host_header(
    http: httpx.Client, limited_seeder: Seeder
) -> None:
    tenant = limited_seeder.tenant()
    response = http.get(
        f"{tenant.tokens_path}/?per_page=5", headers={**tenant.auth(), "Host": "evil.example"}
    )
    assert response.status_code == 307
    assert response.headers["location"] == f"{tenant.tokens_path}?per_page=5"
    followed = http.get(response.headers["location"], headers=tenant.auth())
    assert followed.status_code == 200


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example/x", "evil.example?", "evil.example#", "EVIL.example:80"]
)
def test_the_trailing_slash_redirect_of_the_pip_door_ignores_the_host_header(
    http: httpx.Client, limited_seeder: Seeder, host: str
) -> None:
    """Whatever the Host header holds (a path, a query or a fragment that would make the
    host of Starlette's absolute URL differ from the header's text), the client stays."""
    tenant = limited_seeder.tenant()
    path = f"/{tenant.org}/{tenant.registry}/pypi/files/some-id/hello-1.0.tar.gz"
    response = http.get(f"{path}/", headers={"Host": host})
    assert response.status_code == 307
    assert response.headers["location"].startswith("/")
    assert "evil" not in response.headers["location"].lower()


@pytest.mark.parametrize(
    "path",
    ["//evil.example/v2/user/", "/\\evil.example/v2/user/", "/v2/user/"],
)
def test_no_redirect_can_name_another_host(
    http: httpx.Client, limited_seeder: Seeder, path: str
) -> None:
    tenant = limited_seeder.tenant()
    response = http.get(path, headers={**tenant.auth(), "Host": "evil.example"})
    if response.status_code in (301, 302, 303, 307, 308):
        location = response.headers["location"]
        assert location.startswith("/")
        assert not location.startswith(("//", "/\\"))
        assert "evil.example" not in location.split("/", 2)[1]
    else:
        assert response.status_code == 404


# --- HEAD --------------------------------------------------------------------------------


def _compare(get: httpx.Response, head: httpx.Response) -> None:
    assert head.status_code == get.status_code == 200, (get.status_code, head.status_code)
    assert head.content == b""
    assert {k: v for k, v in head.headers.items() if k not in VOLATILE} == {
        k: v for k, v in get.headers.items() if k not in VOLATILE
    }
    assert head.headers["content-length"] == str(len(get.content))
    assert set(head.headers) == set(get.headers)


def _rest_paths(tenant: Tenant, token_url: str) -> list[str]:
    return [
        tenant.tokens_path,
        f"{tenant.tokens_path}?per_page=1",
        token_url,
        registry_path(tenant.org, tenant.registry),
        f"/v2/organizations/{tenant.org}",
        "/v2/access-token",
        f"/v2/packages/organizations/{tenant.org}/audit-events",
    ]


def test_head_answers_every_rest_get_with_its_headers_and_no_body(
    http: httpx.Client, limited_seeder: Seeder
) -> None:
    tenant = admin_tenant(limited_seeder)
    for _ in range(2):  # two tokens, so the first page of one has a Link header
        token = create_registry_token(http, tenant.org, tenant.registry, tenant.tokens["rw"])
    token_url = str(token["url"]).removeprefix(str(http.base_url))
    for path in _rest_paths(tenant, token_url):
        get = http.get(path, headers=tenant.auth())
        head = http.head(path, headers=tenant.auth())
        _compare(get, head)
        assert head.headers["ratelimit-limit"] == "1000"
        remaining = int(get.headers["ratelimit-remaining"])
        assert int(head.headers["ratelimit-remaining"]) == remaining - 1
    paged = http.head(f"{tenant.tokens_path}?per_page=1", headers=tenant.auth())
    assert 'rel="next"' in paged.headers["link"]


def test_head_answers_the_openapi_document_and_the_pip_door(
    http: httpx.Client, limited_seeder: Seeder
) -> None:
    tenant = admin_tenant(limited_seeder)
    token = create_registry_token(http, tenant.org, tenant.registry, tenant.tokens["rw"])
    _compare(http.get("/openapi.json"), http.head("/openapi.json"))
    index = simple_path(tenant.org, tenant.registry)
    _compare(
        http.get(index, headers=basic(token["token"])),
        http.head(index, headers=basic(token["token"])),
    )


def test_head_refusals_are_get_refusals(http: httpx.Client, limited_seeder: Seeder) -> None:
    tenant = limited_seeder.tenant()
    unauthenticated = http.head(tenant.tokens_path)
    assert unauthenticated.status_code == 401
    assert unauthenticated.content == b""
    missing = http.head(f"{tenant.tokens_path}/{UNKNOWN_ID}", headers=tenant.auth())
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (f"{{tokens}}/{UNKNOWN_ID}/rotate", "POST"),
        ("/secret-scanning/github", "POST"),
    ],
)
def test_head_on_a_route_without_get_is_405(
    http: httpx.Client, limited_seeder: Seeder, path: str, allowed: str
) -> None:
    tenant = limited_seeder.tenant()
    response = http.head(path.replace("{tokens}", tenant.tokens_path), headers=tenant.auth())
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.content == b""


def test_allow_names_head_wherever_get_is_served(
    http: httpx.Client, limited_seeder: Seeder
) -> None:
    tenant = limited_seeder.tenant()
    response = http.request("DELETE", tenant.tokens_path, headers=tenant.auth())
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
