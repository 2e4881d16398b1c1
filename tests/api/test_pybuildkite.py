"""pybuildkite (PyPI), Buildkite's Python client, unchanged, against a real server process.

pybuildkite 1.3.0 builds every URL from ``Buildkite.base_url`` (``https://api.buildkite.com/v2/``
unless set), sends ``requests`` calls with ``Authorization: Bearer``, always adds
``per_page`` (100 unless ``Buildkite(per_page=...)``), and raises ``requests.HTTPError`` on
any 4xx/5xx (``raise_for_status``). Among issue #12's endpoints it covers:

* ``organizations().list_all(page=0, with_pagination=False)``: GET ``…/v2/organizations/``
  (a trailing slash, answered with a relative ``307`` to ``/v2/organizations``, which
  ``requests`` follows with the same method and credentials) with ``page=0`` by default;
  ``with_pagination`` reads ``next``/``prev``/``first``/``last`` from ``Link``.
* ``organizations().get_org(slug)``: GET ``…/v2/organizations/{slug}``.
* ``access_tokens().get_token()`` / ``revoke_token()``: GET / DELETE ``…/v2/access-token``
  (a DELETE returns ``response.ok``).
* ``users().get_current_user()``: GET ``…/v2/user``.

It has no rate-limit, package or registry methods. Only loopback traffic: the base URL is
the test server's.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pybuildkite.buildkite import Buildkite

from tests.harness import Seeder, ServerProcess, Tenant, running_server


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(Path(tmp_path_factory.mktemp("pybuildkite"))) as server:
        yield server


@pytest.fixture(scope="module")
def real_seeder(real_server: ServerProcess) -> Iterator[Seeder]:
    seeder = Seeder(real_server)
    yield seeder
    seeder.services.database.dispose()


def answer(error: pytest.ExceptionInfo[requests.HTTPError]) -> requests.Response:
    """The response a ``raise_for_status`` error carries."""
    response = error.value.response
    assert response is not None
    return response


def client(server: ServerProcess, token: str, per_page: int = 100) -> Buildkite:
    buildkite = Buildkite(per_page=per_page)
    buildkite.set_access_token(token)
    buildkite.base_url = f"{server.base_url}/v2/"
    return buildkite


@pytest.fixture
def tenant_in_three(real_seeder: Seeder) -> tuple[Tenant, list[str]]:
    """A user in three organizations (its own first by name), and someone else's."""
    tenant = real_seeder.tenant()
    slugs = [tenant.org]
    for suffix, name in (("_zebra", "Zebra Works"), ("_zeta", "Zeta Labs")):
        real_seeder.services.organizations.create(tenant.org + suffix, name)
        real_seeder.services.organizations.add_member(tenant.org + suffix, tenant.email)
        slugs.append(tenant.org + suffix)
    real_seeder.tenant()
    return tenant, slugs


def test_list_all_and_get_org(
    real_server: ServerProcess, tenant_in_three: tuple[Tenant, list[str]]
) -> None:
    tenant, slugs = tenant_in_three
    buildkite = client(real_server, tenant.tokens["rw"])

    listed = buildkite.organizations().list_all()  # page=0, per_page=100
    assert [organization["slug"] for organization in listed] == slugs
    assert listed[0]["name"] == f"Org {tenant.org}"
    assert listed[0]["url"] == f"{real_server.base_url}/v2/organizations/{tenant.org}"

    for organization in listed:
        assert buildkite.organizations().get_org(organization["slug"]) == organization

    with pytest.raises(requests.HTTPError) as hidden:
        buildkite.organizations().get_org("no_such_org")
    assert answer(hidden).status_code == 404
    assert answer(hidden).json() == {"message": "No organization found"}


def test_list_all_with_pagination_reads_the_link_header(
    real_server: ServerProcess, tenant_in_three: tuple[Tenant, list[str]]
) -> None:
    tenant, slugs = tenant_in_three
    organizations = client(real_server, tenant.tokens["rw"], per_page=2).organizations()

    first = organizations.list_all(page=1, with_pagination=True)
    assert [organization["slug"] for organization in first.body] == slugs[:2]
    assert (first.next_page, first.last_page) == (2, 2)
    assert (first.first_page, first.previous_page) == (None, None)

    second = organizations.list_all(page=first.next_page, with_pagination=True)
    assert [organization["slug"] for organization in second.body] == slugs[2:]
    assert (second.first_page, second.previous_page) == (1, 1)
    assert second.next_page is None


def test_a_token_limited_to_one_organization_lists_only_it(
    real_server: ServerProcess, real_seeder: Seeder, tenant_in_three: tuple[Tenant, list[str]]
) -> None:
    tenant, slugs = tenant_in_three
    limited = real_seeder.api_token(tenant.email, ("read_registries",), orgs=(slugs[2],))
    organizations = client(real_server, limited).organizations()
    assert [organization["slug"] for organization in organizations.list_all()] == [slugs[2]]
    with pytest.raises(requests.HTTPError) as hidden:
        organizations.get_org(slugs[0])
    assert answer(hidden).status_code == 404


def test_access_token_get_token_and_revoke_token(
    real_server: ServerProcess, real_seeder: Seeder
) -> None:
    tenant = real_seeder.tenant()
    issued = real_seeder.services.auth.issue(
        tenant.email, ("read_user", "read_registries"), description="pybuildkite"
    )
    buildkite = client(real_server, issued.secret)

    token = buildkite.access_tokens().get_token()
    assert token["uuid"] == str(issued.token.id)
    assert token["scopes"] == ["read_registries", "read_user"]
    assert token["description"] == "pybuildkite"
    assert token["user"] == {"name": "Test User", "email": tenant.email}
    assert token["created_at"].endswith("Z")

    user = buildkite.users().get_current_user()
    assert (user["id"], user["email"]) == (str(tenant.user_id), tenant.email)

    assert buildkite.access_tokens().revoke_token() is True
    for call in (
        buildkite.access_tokens().get_token,
        buildkite.organizations().list_all,
        buildkite.users().get_current_user,
    ):
        with pytest.raises(requests.HTTPError) as refused:
            call()
        assert answer(refused).status_code == 401
        assert answer(refused).json()["message"]
