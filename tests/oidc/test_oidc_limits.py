"""What an OIDC caller is charged (it has no user: its organization and its address),
how many of its refusals are recorded, and its first use recorded once across processes."""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from registry_tokens.kit.context import RequestContext, Scope
from registry_tokens.registries.repository import REGISTRY_BY_SLUGS
from registry_tokens.services import Services
from tests.harness import InProcessServer, Seeder, Tenant, in_process_server
from tests.oidc.conftest import audience, events, set_policy
from tests.oidc_issuer import LocalIssuer, new_key
from tests.package_helpers import admin_tenant, basic, bearer, packages_path, simple_path


@pytest.fixture(scope="module")
def limited_server(
    tmp_path_factory: pytest.TempPathFactory, issuer: LocalIssuer
) -> Iterator[InProcessServer]:
    env = {
        "REGISTRY_TOKENS_OIDC_ISSUERS": issuer.url,
        "REGISTRY_TOKENS_RATE_LIMIT_PER_ORGANIZATION": "3",
        "REGISTRY_TOKENS_RATE_LIMIT_PER_CLIENT": "1000",
        "REGISTRY_TOKENS_REFUSALS_RECORDED_PER_TOKEN": "2",
    }
    with in_process_server(tmp_path_factory.mktemp("oidc-limited"), env=env) as started:
        yield started


def _policy(issuer: LocalIssuer) -> list[dict[str, Any]]:
    return [{"iss": issuer.url, "claims": {"pipeline_slug": "deploy"}}]


def test_an_oidc_caller_counts_against_its_organization_and_gets_429_past_it(
    limited_server: InProcessServer, issuer: LocalIssuer
) -> None:
    owner = admin_tenant(Seeder(limited_server))
    with limited_server.client() as client:
        set_policy(client, owner, _policy(issuer))  # the owner's request: one of three
        token = issuer.token(audience(limited_server, owner))
        path = packages_path(owner.org, owner.registry)
        first = client.get(path, headers=bearer(token))
        assert first.status_code == 200, first.text
        assert first.headers["RateLimit-Limit"] == "3"
        assert first.headers["RateLimit-Remaining"] == "1"
        assert client.get(path, headers=bearer(token)).status_code == 200
        over = client.get(path, headers=bearer(token))
        assert over.status_code == 429, over.text
        # Installs are never limited, OIDC or not.
        assert (
            client.get(simple_path(owner.org, owner.registry), headers=basic(token)).status_code
            == 200
        )


def test_refusals_of_one_sender_are_recorded_at_most_so_many_per_window(
    limited_server: InProcessServer, issuer: LocalIssuer
) -> None:
    owner = admin_tenant(Seeder(limited_server))
    with limited_server.client() as client:
        set_policy(client, owner, _policy(issuer))
        stranger = new_key()
        for _ in range(5):  # a made-up token each time: the sender is what is bounded
            token = issuer.token(
                audience(limited_server, owner), key=stranger, kid=issuer.current.kid
            )
            response = client.get(simple_path(owner.org, owner.registry), headers=basic(token))
            assert response.status_code == 401
        refused = events(limited_server, client, owner, "OIDC_TOKEN_REFUSED")
        assert [event["data"]["reason"] for event in refused] == ["bad_signature"] * 2


def test_a_path_without_a_registry_is_refused_unrecorded_and_a_public_one_needs_nothing(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    owner: Tenant,
    issuer: LocalIssuer,
) -> None:
    token = issuer.token(f"{oidc_server.base_url}/{owner.org}/nothing-here")
    response = oidc_client.get(simple_path(owner.org, "nothing-here"), headers=basic(token))
    assert response.status_code == 401
    assert response.json()["message"] == (
        "OIDC token refused: no statement of this registry's OIDC policy allows it"
    )
    assert events(oidc_server, oidc_client, owner, "OIDC_TOKEN_REFUSED") == []

    made_public = oidc_client.patch(
        f"/v2/packages/organizations/{owner.org}/registries/{owner.registry}",
        headers=owner.auth(),
        json={"public": True},
    )
    assert made_public.status_code == 200, made_public.text
    bad = issuer.token(audience(oidc_server, owner), key=new_key(), kid=issuer.current.kid)
    assert (
        oidc_client.get(simple_path(owner.org, owner.registry), headers=basic(bad)).status_code
        == 200
    )


def test_a_first_use_is_recorded_once_whichever_process_sees_it(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    oidc_seeder: Seeder,
    owner: Tenant,
    issuer: LocalIssuer,
) -> None:
    set_policy(oidc_client, owner, _policy(issuer))
    served: Services = oidc_server.app.state.services
    token = served.oidc.verify(issuer.token(audience(oidc_server, owner)))
    registry = served.database.fetch(
        REGISTRY_BY_SLUGS, organization_slug=owner.org, registry_slug=owner.registry
    )[0]
    grant = served.oidc.grant(token, registry, owner.org, owner.registry, Scope.READ_PACKAGES)
    # Two processes' services on one database, each seeing the token for the first time.
    for oidc in (served.oidc, oidc_seeder.services.oidc, served.oidc):
        oidc.record_use(
            grant, RequestContext(client_ip="203.0.113.9", user_agent="test"), "install"
        )
    assert len(events(oidc_server, oidc_client, owner, "OIDC_TOKEN_USED")) == 1
    assert not served.oidc.use_unrecorded(grant)
