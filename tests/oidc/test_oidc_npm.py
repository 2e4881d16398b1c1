"""OIDC tokens with npm: a job whose statement grants ``write_packages`` runs ``npm
publish`` with the JWT as its ``_authToken`` (npm sends it as ``Bearer``), and installs
with it; a read-only statement installs and is refused the publish, with its reason."""

import json

import httpx

from registry_tokens.registries.service import Ecosystem
from tests.harness import InProcessServer, Seeder, Tenant, unique
from tests.oidc.conftest import audience, events, set_policy
from tests.oidc_issuer import LocalIssuer
from tests.package_helpers import bearer
from tests.packages.test_npm_packages import npm_tarball, publish_document


def javascript_registry(seeder: Seeder, tenant: Tenant) -> Tenant:
    registry = seeder.services.registries.create(
        tenant.org, "Node", slug=unique("js"), ecosystem=Ecosystem.JAVASCRIPT
    )
    tenant.registry = registry.slug
    return tenant


def npm_publish(client: httpx.Client, tenant: Tenant, token: str, name: str) -> httpx.Response:
    document = publish_document(name, "1.0.0", npm_tarball(name, "1.0.0"))
    return client.put(
        f"/{tenant.org}/{tenant.registry}/npm/{name}",
        headers=bearer(token),
        content=json.dumps(document).encode(),
    )


def test_npm_publishes_and_installs_with_an_oidc_token(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    oidc_seeder: Seeder,
    owner: Tenant,
    issuer: LocalIssuer,
) -> None:
    tenant = javascript_registry(oidc_seeder, owner)
    set_policy(
        oidc_client,
        tenant,
        [
            {"iss": issuer.url, "scopes": ["read_packages"], "claims": {"pipeline_slug": "ci"}},
            {
                "iss": issuer.url,
                "scopes": ["read_packages", "write_packages"],
                "claims": {"pipeline_slug": "release"},
            },
        ],
    )
    release = issuer.token(audience(oidc_server, tenant), pipeline_slug="release")
    published = npm_publish(oidc_client, tenant, release, "oidc-thing")
    assert published.status_code == 201, published.text

    reader = issuer.token(audience(oidc_server, tenant), pipeline_slug="ci")
    packument = oidc_client.get(
        f"/{tenant.org}/{tenant.registry}/npm/oidc-thing", headers=bearer(reader)
    )
    assert packument.status_code == 200, packument.text
    assert packument.json()["dist-tags"] == {"latest": "1.0.0"}

    refused = npm_publish(oidc_client, tenant, reader, "oidc-other")
    assert refused.status_code == 401, refused.text
    assert "does not grant the scope" in refused.json()["message"]
    assert refused.json()["error"]  # what npm prints
    reasons = [
        (event["data"]["reason"], event["data"]["action"])
        for event in events(oidc_server, oidc_client, tenant, "OIDC_TOKEN_REFUSED")
    ]
    assert reasons == [("scope_not_granted", "publish")]
    used = events(oidc_server, oidc_client, tenant, "OIDC_TOKEN_USED")
    assert sorted(event["data"]["action"] for event in used) == ["install", "publish"]
    # Another registry's audience publishes nothing here.
    elsewhere = issuer.token(
        audience(oidc_server, tenant, "other-registry"), pipeline_slug="release"
    )
    assert npm_publish(oidc_client, tenant, elsewhere, "oidc-third").status_code == 401
