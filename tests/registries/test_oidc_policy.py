"""A registry's ``oidc_policy`` as Buildkite's docs write it: statements, or their YAML or
JSON text; normalized, bounded, refused with the place that is wrong, never enforced here."""

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import update as update_table

from registry_tokens.registries.models import Registry
from tests.harness import Seeder, Tenant
from tests.package_helpers import admin_tenant, registries_path, registry_path

# The docs' example ("OIDC in Buildkite Package Registries"), a bare value and all.
DOCS_YAML = """\
- iss: https://agent.buildkite.com
  scopes: [read_packages]
  claims:
    organization_slug: my-org
    pipeline_slug:
      in:
        - my-pipeline
        - my-other-pipeline
    build_branch:
      not_equals: scratch
"""
STATEMENTS = [
    {
        "iss": "https://agent.buildkite.com",
        "scopes": ["read_packages"],
        "claims": {
            "organization_slug": "my-org",
            "pipeline_slug": {"in": ["my-pipeline", "my-other-pipeline"]},
            "build_branch": {"not_equals": "scratch"},
        },
    }
]
SHOWN = """\
- iss: https://agent.buildkite.com
  scopes:
  - read_packages
  claims:
    organization_slug:
      equals: my-org
    pipeline_slug:
      in:
      - my-pipeline
      - my-other-pipeline
    build_branch:
      not_equals: scratch
"""


@pytest.fixture
def admin(package_seeder: Seeder) -> Tenant:
    return admin_tenant(package_seeder)


def update(client: httpx.Client, tenant: Tenant, policy: Any) -> httpx.Response:
    return client.patch(
        registry_path(tenant.org, tenant.registry),
        headers=tenant.auth(),
        json={"oidc_policy": policy},
    )


def current(client: httpx.Client, tenant: Tenant) -> Any:
    response = client.get(registry_path(tenant.org, tenant.registry), headers=tenant.auth())
    assert response.status_code == 200
    return response.json()["oidc_policy"]


@pytest.mark.parametrize(
    "policy",
    [DOCS_YAML, json.dumps(STATEMENTS, indent=2), STATEMENTS],
    ids=["yaml text", "json text", "statements"],
)
def test_the_three_forms_are_stored_normalized_and_returned_as_yaml(
    package_client: httpx.Client, admin: Tenant, policy: Any
) -> None:
    response = update(package_client, admin, policy)
    assert response.status_code == 200, response.text
    assert response.json()["oidc_policy"] == SHOWN
    assert current(package_client, admin) == SHOWN
    # What it returns is accepted back unchanged (a read-modify-write client round-trips).
    assert update(package_client, admin, SHOWN).json()["oidc_policy"] == SHOWN


def test_null_an_empty_list_or_blank_text_clear_the_policy(
    package_client: httpx.Client, admin: Tenant
) -> None:
    clearing: list[object] = [None, [], "", "  \n"]
    for cleared in clearing:
        assert update(package_client, admin, STATEMENTS).status_code == 200
        response = update(package_client, admin, cleared)
        assert response.status_code == 200
        assert response.json()["oidc_policy"] is None
        assert current(package_client, admin) is None


def test_create_accepts_the_policy_too(package_client: httpx.Client, admin: Tenant) -> None:
    response = package_client.post(
        registries_path(admin.org),
        headers=admin.auth(),
        json={"name": "Policed", "ecosystem": "python", "oidc_policy": DOCS_YAML},
    )
    assert response.status_code == 200, response.text
    assert response.json()["oidc_policy"] == SHOWN


NESTED = "claims:\n" + "".join("  " * n + f"k{n}:\n" for n in range(1, 12)) + "  " * 12 + "v\n"
BAD = {
    "a mapping": ({"iss": "https://a.example"}, "must be a list of policy statements"),
    "a number": (5, "must be a list of policy statements"),
    "yaml syntax": ("- iss: [unclosed\n", "is not valid YAML or JSON ("),
    "yaml alias": (
        "- &s {iss: 'https://a.example', claims: {x: y}}\n- *s\n",
        "must not use YAML anchors or aliases",
    ),
    "too deep": ("- iss: https://a.example\n  " + NESTED, "is nested too deeply (maximum is 8)"),
    "json too deep": ("[" * 30_000 + "]" * 30_000, "is nested too deeply"),
    "too long": ("#" + "x" * 65_536, "is too long (maximum is 65536 characters)"),
    "nul": ("- iss: x\x00", "must not contain NUL characters"),
    "no iss": ([{"claims": {"a": "b"}}], "at [0].iss can't be blank"),
    "iss not a url": ([{"iss": "agent", "claims": {"a": "b"}}], "at [0].iss must be the issuer"),
    "unknown key": (
        [{"iss": "https://a.example", "claims": {"a": "b"}, "effect": "allow"}],
        "at [0] has unknown keys effect",
    ),
    "unknown matcher": (
        [{"iss": "https://a.example", "claims": {"a": {"eq": "b"}}}],
        "at [0].claims.a has unknown matchers eq",
    ),
    "in not a list": (
        [{"iss": "https://a.example", "claims": {"a": {"in": "b"}}}],
        "at [0].claims.a.in must be a list of at least one value",
    ),
    "matches not text": (
        [{"iss": "https://a.example", "claims": {"a": {"matches": [1]}}}],
        "at [0].claims.a.matches[0] must be text",
    ),
    "yaml date": (
        "- iss: https://a.example\n  claims:\n    day: 2024-01-01\n",
        "at [0].claims.day must be text, a number or true/false",
    ),
    "numeric claim name": (
        "- iss: https://a.example\n  claims:\n    1: x\n",
        "at [0].claims has an invalid claim name '1'",
    ),
    "too many statements": (
        [{"iss": "https://a.example", "claims": {"a": "b"}}] * 21,
        "has too many statements (maximum is 20)",
    ),
    "too many values": (
        [{"iss": "https://a.example", "claims": {"a": {"in": list(range(101))}}}],
        "at [0].claims.a.in has too many values (maximum is 100)",
    ),
}


@pytest.mark.parametrize(("policy", "text"), BAD.values(), ids=BAD.keys())
def test_bad_policies_are_422s_naming_the_place(
    package_client: httpx.Client, admin: Tenant, policy: Any, text: str
) -> None:
    assert update(package_client, admin, STATEMENTS).status_code == 200
    response = update(package_client, admin, policy)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"].startswith("Validation failed: Oidc policy "), body
    assert text in body["message"], body["message"]
    assert body["errors"] == [{"field": "oidc_policy", "code": "invalid"}]
    assert current(package_client, admin) == SHOWN  # the stored policy is untouched


@pytest.mark.parametrize(
    "legacy",
    ["- iss: not checked then\n  claims: {}\n", "free text, once accepted as a string"],
    ids=["invalid yaml policy", "free text"],
)
def test_a_policy_stored_before_policies_were_checked_is_returned_as_stored(
    package_client: httpx.Client, package_seeder: Seeder, admin: Tenant, legacy: str
) -> None:
    with package_seeder.services.database.writing() as session:
        session.execute(
            update_table(Registry).where(Registry.slug == admin.registry).values(oidc_policy=legacy)
        )
    assert current(package_client, admin) == legacy
    assert update(package_client, admin, STATEMENTS).json()["oidc_policy"] == SHOWN
