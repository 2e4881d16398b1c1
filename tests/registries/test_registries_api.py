"""The Registries API: create, list, get, update (POST, PATCH, PUT) and delete.

Managing registries takes an organization admin and the right scope; deleting one takes
its tokens and packages with it, unusable from the moment the delete answers.
"""

import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from tests.distributions import build_wheel
from tests.harness import Seeder, Server, Tenant
from tests.package_helpers import (
    ALL_REGISTRY_SCOPES,
    admin_tenant,
    basic,
    bearer,
    create_registry_token,
    package_file,
    packages_path,
    published,
    registries_path,
    registry_path,
    simple_path,
    tokens_path,
)
from tests.registry_tokens.test_seed_contract import assert_graphql_id

REGISTRY_KEYS = [
    "id",
    "graphql_id",
    "slug",
    "url",
    "web_url",
    "name",
    "ecosystem",
    "description",
    "emoji",
    "color",
    "public",
    "oidc_policy",
    "team_ids",
]
WEB = "http://web.example.test"
POLICY = "- iss: https://agent.buildkite.com\n  claims:\n    pipeline_slug: deploy\n"
# As it is returned: normalized (a bare value is an equals matcher), as YAML text.
POLICY_SHOWN = (
    "- iss: https://agent.buildkite.com\n  claims:\n    pipeline_slug:\n      equals: deploy\n"
)


@pytest.fixture
def admin(package_seeder: Seeder) -> Tenant:
    return admin_tenant(package_seeder)


def create(client: httpx.Client, tenant: Tenant, **fields: Any) -> httpx.Response:
    return client.post(registries_path(tenant.org), headers=tenant.auth(), json=fields)


def created(client: httpx.Client, tenant: Tenant, **fields: Any) -> dict[str, Any]:
    response = create(client, tenant, **fields)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def all_registries(client: httpx.Client, tenant: Tenant) -> list[dict[str, Any]]:
    response = client.get(
        registries_path(tenant.org), params={"per_page": 100}, headers=tenant.auth()
    )
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def assert_validation_failed(response: httpx.Response, *fields: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"].startswith("Validation failed")
    assert {error["field"] for error in body["errors"]} == set(fields)


def link_relations(header: str) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>;\s*rel="(\w+)"', header)}


# --------------------------------------------------------------------------- create and get


def test_create_answers_the_registry_in_the_documented_shape(
    package_server: Server, package_client: httpx.Client, admin: Tenant
) -> None:
    body = created(
        package_client,
        admin,
        name="Python Packages 2!",
        ecosystem="python",
        description="Our wheels",
        emoji=":snake:",
        color="#3776AB",
        oidc_policy=POLICY,
    )
    assert list(body) == REGISTRY_KEYS
    assert uuid.UUID(body["id"]).version == 7
    assert_graphql_id(body["graphql_id"], "Registry", body["id"])
    assert body["slug"] == "python-packages-2"
    assert body["url"] == f"{package_server.base_url}{registry_path(admin.org, body['slug'])}"
    assert (
        body["web_url"] == f"{WEB}/organizations/{admin.org}/packages/registries/python-packages-2"
    )
    assert {key: body[key] for key in REGISTRY_KEYS[5:]} == {
        "name": "Python Packages 2!",
        "ecosystem": "python",
        "description": "Our wheels",
        "emoji": ":snake:",
        "color": "#3776AB",
        "public": False,
        "oidc_policy": POLICY_SHOWN,
        "team_ids": [],
    }
    fetched = package_client.get(body["url"], headers=admin.auth())
    assert fetched.status_code == 200
    assert fetched.json() == body
    assert list(fetched.json()) == REGISTRY_KEYS

    minimal = created(package_client, admin, name="Bare", ecosystem="javascript")
    assert list(minimal) == REGISTRY_KEYS
    assert (minimal["slug"], minimal["ecosystem"], minimal["public"]) == (
        "bare",
        "javascript",
        False,
    )
    for key in ("description", "emoji", "color", "oidc_policy"):
        assert minimal[key] is None  # present, not omitted


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("My Registry", "my-registry"),
        ("  Python  packages!! ", "python-packages"),
        ("ACME_Internal.Libs", "acme-internal-libs"),
        ("v2 -- Release Candidates", "v2-release-candidates"),
    ],
)
def test_the_slug_is_the_kebab_case_name(
    package_client: httpx.Client, admin: Tenant, name: str, slug: str
) -> None:
    body = created(package_client, admin, name=name, ecosystem="python")
    assert body["slug"] == slug
    assert body["name"] == name
    assert package_client.get(registry_path(admin.org, slug), headers=admin.auth()).json() == body


def test_a_taken_slug_is_422(package_client: httpx.Client, admin: Tenant) -> None:
    first = created(package_client, admin, name="Shared Name", ecosystem="python")
    before = all_registries(package_client, admin)
    for name in ("Shared Name", "shared name", "Shared--Name!", admin.registry):
        response = create(package_client, admin, name=name, ecosystem="ruby")
        assert_validation_failed(response, "slug")
        assert "has already been taken" in response.json()["message"]
        assert response.json()["errors"] == [{"field": "slug", "code": "already_exists"}]
    assert all_registries(package_client, admin) == before
    got = package_client.get(first["url"], headers=admin.auth())
    assert got.json() == first  # the original is untouched


def _stable_id(value: object) -> str:
    """``repr``, with sets sorted: the ids must not vary with hash seeds (pytest-xdist
    requires every worker to collect the same ids)."""
    return repr(sorted(value)) if isinstance(value, set) else repr(value)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"name", "ecosystem"}),
        ({"name": "No Ecosystem"}, {"ecosystem"}),
        ({"ecosystem": "python"}, {"name"}),
        ({"name": "Cobol", "ecosystem": "cobol"}, {"ecosystem"}),
        ({"name": "Upper", "ecosystem": "PYTHON"}, {"ecosystem"}),
        ({"name": "Null", "ecosystem": None}, {"ecosystem"}),
        ({"name": "Number", "ecosystem": 5}, {"ecosystem"}),
        ({"name": "Object", "ecosystem": {}}, {"ecosystem"}),
        ({"name": "List", "ecosystem": ["python"]}, {"ecosystem"}),
        ({"name": "Blank Description", "ecosystem": "python", "description": " "}, {"description"}),
        ({"name": "", "ecosystem": "python"}, {"name"}),
        ({"name": "   ", "ecosystem": "python"}, {"name"}),
        ({"name": "!!!", "ecosystem": "python"}, {"name"}),  # nothing to make a slug of
        ({"name": 7, "ecosystem": "python"}, {"name"}),
        ({"name": "Public?", "ecosystem": "python", "public": "yes"}, {"public"}),
    ],
    ids=_stable_id,
)
def test_name_and_a_known_ecosystem_are_required(
    package_client: httpx.Client, admin: Tenant, body: dict[str, Any], fields: set[str]
) -> None:
    before = all_registries(package_client, admin)
    response = package_client.post(registries_path(admin.org), headers=admin.auth(), json=body)
    assert_validation_failed(response, *fields)
    assert all_registries(package_client, admin) == before


# --------------------------------------------------------------------------- list


def test_list_is_paginated_with_a_link_header(package_client: httpx.Client, admin: Tenant) -> None:
    made = [created(package_client, admin, name=f"Paged {n}", ecosystem="python") for n in range(4)]
    everything = all_registries(package_client, admin)
    assert len(everything) == 5  # the tenant's own registry and the four
    assert [body["id"] for body in everything[:4]] == [body["id"] for body in reversed(made)]
    for body in everything:
        assert list(body) == REGISTRY_KEYS

    seen: list[str] = []
    url: str | None = f"{registries_path(admin.org)}?per_page=2"
    pages = 0
    while url is not None:
        response = package_client.get(url, headers=admin.auth())
        assert response.status_code == 200
        assert "Link" in response.headers["access-control-expose-headers"]
        assert len(response.json()) <= 2
        seen.extend(body["id"] for body in response.json())
        pages += 1
        links = link_relations(response.headers.get("link", ""))
        if pages == 1:
            assert set(links) == {"next", "last"}
            assert "page=3" in links["last"]
        else:
            assert {"first", "prev"} <= set(links)
        url = links.get("next")
        assert pages <= 3
    assert pages == 3
    assert seen == [body["id"] for body in everything]


# --------------------------------------------------------------------------- update


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT"])
def test_update_changes_only_the_fields_sent_and_never_the_slug(
    package_client: httpx.Client, admin: Tenant, method: str
) -> None:
    original = created(
        package_client,
        admin,
        name="Before",
        ecosystem="python",
        description="kept",
        emoji=":package:",
        color="#000000",
    )
    url = original["url"]

    def update(**fields: Any) -> httpx.Response:
        return package_client.request(method, url, headers=admin.auth(), json=fields)

    renamed = update(name="After Rename")
    assert renamed.status_code == 200, renamed.text
    assert list(renamed.json()) == REGISTRY_KEYS
    expected = {**original, "name": "After Rename"}
    assert renamed.json() == expected  # the same slug, url and web_url: links keep working

    changed = update(description="changed", public=True, oidc_policy=POLICY)
    expected = {**expected, "description": "changed", "public": True, "oidc_policy": POLICY_SHOWN}
    assert changed.json() == expected

    cleared = update(description=None, emoji=None)
    expected = {**expected, "description": None, "emoji": None}
    assert cleared.json() == expected

    assert update().json() == expected  # an empty update changes nothing
    for bad in ({"name": ""}, {"name": None}, {"public": "no"}, {"color": 5}):
        assert_validation_failed(update(**bad), *bad)
    # The ecosystem is not for changing: refused or ignored, it stays.
    attempt = update(ecosystem="ruby")
    assert attempt.status_code in (200, 422), attempt.text
    fetched = package_client.get(url, headers=admin.auth())
    assert fetched.json() == expected
    assert (
        package_client.get(
            registry_path(admin.org, "after-rename"), headers=admin.auth()
        ).status_code
        == 404
    )


# --------------------------------------------------------------------------- who may


def test_only_admins_with_the_scope_manage_registries(
    package_client: httpx.Client, package_seeder: Seeder, admin: Tenant
) -> None:
    target = created(package_client, admin, name="Guarded", ecosystem="python")
    before = all_registries(package_client, admin)

    member_email = f"member-{uuid.uuid4().hex[:8]}@example.test"
    package_seeder.services.users.create("Member", member_email)
    package_seeder.services.organizations.add_member(admin.org, member_email)
    member = bearer(package_seeder.api_token(member_email, ALL_REGISTRY_SCOPES))
    not_admin = "Only organization admins can manage registries"
    attempts = [
        package_client.post(
            registries_path(admin.org), headers=member, json={"name": "M", "ecosystem": "python"}
        ),
        package_client.patch(target["url"], headers=member, json={"name": "Hijacked"}),
        package_client.post(target["url"], headers=member, json={"name": "Hijacked"}),
        package_client.put(target["url"], headers=member, json={"name": "Hijacked"}),
        package_client.delete(target["url"], headers=member),
    ]
    for response in attempts:
        assert response.status_code == 403, response.text
        assert response.json() == {"message": not_admin}
    # Members may still read.
    assert package_client.get(target["url"], headers=member).json() == target
    assert package_client.get(registries_path(admin.org), headers=member).status_code == 200

    def admin_token(*scopes: str) -> dict[str, str]:
        return bearer(package_seeder.api_token(admin.email, scopes))

    lacking_write = admin_token("read_registries", "delete_registries")
    lacking_delete = admin_token("read_registries", "write_registries")
    lacking_read = admin_token("write_registries", "delete_registries")
    for response, scope in (
        (
            package_client.post(
                registries_path(admin.org),
                headers=lacking_write,
                json={"name": "W", "ecosystem": "python"},
            ),
            "write_registries",
        ),
        (
            package_client.patch(target["url"], headers=lacking_write, json={"name": "X"}),
            "write_registries",
        ),
        (package_client.delete(target["url"], headers=lacking_delete), "delete_registries"),
        (package_client.get(target["url"], headers=lacking_read), "read_registries"),
        (package_client.get(registries_path(admin.org), headers=lacking_read), "read_registries"),
    ):
        assert response.status_code == 403, response.text
        assert response.json() == {"message": f"Your access token doesn't have the {scope} scope"}

    # Outside the organization: nothing exists.
    stranger = package_seeder.tenant(scopes=ALL_REGISTRY_SCOPES)
    package_seeder.services.organizations.add_member(stranger.org, stranger.email)
    for response in (
        package_client.get(target["url"], headers=stranger.auth()),
        package_client.delete(target["url"], headers=stranger.auth()),
        package_client.get(registries_path(admin.org), headers=stranger.auth()),
    ):
        assert response.status_code == 404, response.text
    # No token at all, or a registry token: 401.
    registry_token = create_registry_token(
        package_client, admin.org, target["slug"], admin.tokens["rw"]
    )
    for headers in ({}, bearer(registry_token["token"])):
        assert package_client.delete(target["url"], headers=headers).status_code == 401
        assert package_client.get(target["url"], headers=headers).status_code == 401

    assert all_registries(package_client, admin) == before


# --------------------------------------------------------------------------- delete


def test_deleting_a_registry_kills_its_tokens_and_packages_at_once(
    package_server: Server,
    package_client: httpx.Client,
    package_seeder: Seeder,
    admin: Tenant,
    tmp_path: Path,
) -> None:
    doomed = created(package_client, admin, name="Doomed", ecosystem="python")
    slug = doomed["slug"]
    package = published(
        package_client,
        admin.org,
        slug,
        admin.tokens["rw"],
        build_wheel(tmp_path, "hello-pkg", "1.0"),
    )
    stored = package_file(package_server, package["digests"]["sha256"], package["id"])
    token = create_registry_token(package_client, admin.org, slug, admin.tokens["rw"])
    auth = basic(token["token"])
    project_url = f"{package_server.base_url}{simple_path(admin.org, slug)}hello-pkg/"
    page = package_client.get(
        project_url, headers={**auth, "Accept": "application/vnd.pypi.simple.v1+json"}
    )
    assert page.status_code == 200
    file_url = urljoin(project_url, page.json()["files"][0]["url"])
    install_urls = [
        f"{package_server.base_url}{simple_path(admin.org, slug)}",
        project_url,
        file_url,
    ]
    for url in install_urls:  # the token works, right up to the delete
        assert package_client.get(url, headers=auth).status_code == 200
    assert stored.exists()
    neighbour = published(
        package_client,
        admin.org,
        admin.registry,
        admin.tokens["rw"],
        build_wheel(tmp_path, "hello-pkg", "1.0"),
    )
    neighbour_file = package_file(package_server, neighbour["digests"]["sha256"], neighbour["id"])

    deleted = package_client.delete(doomed["url"], headers=admin.auth())
    assert deleted.status_code == 200, deleted.text

    for url in install_urls:
        refused = package_client.get(url, headers=auth)
        assert refused.status_code == 401, (url, refused.text)
        assert refused.headers["www-authenticate"].startswith("Basic")
    assert not stored.exists()
    assert neighbour_file.exists()  # another registry's file of the same name is untouched
    for url in (
        doomed["url"],
        tokens_path(admin.org, slug),
        f"{tokens_path(admin.org, slug)}/{token['id']}",
        packages_path(admin.org, slug),
        package["url"],
    ):
        response = package_client.get(url, headers=admin.auth())
        assert response.status_code == 404, (url, response.text)
    assert slug not in [body["slug"] for body in all_registries(package_client, admin)]
    assert package_client.delete(doomed["url"], headers=admin.auth()).status_code == 404

    # A new registry of the same name gets the same slug, but nothing of the old one.
    reborn = created(package_client, admin, name="Doomed", ecosystem="python")
    assert reborn["slug"] == slug
    assert reborn["id"] != doomed["id"]
    for url in install_urls:
        assert package_client.get(url, headers=auth).status_code == 401
    listed = package_client.get(tokens_path(admin.org, slug), headers=admin.auth())
    assert listed.json() == []
    packages = package_client.get(packages_path(admin.org, slug), headers=admin.auth())
    assert packages.json()["items"] == []
