"""Issue 14: OIDC tokens from a real local issuer (discovery and JWKS over HTTP) install
and publish under their registry's policy, and every refusal is a 401 with its reason in
the audit log."""

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.distributions import build_wheel
from tests.harness import InProcessServer, Seeder, Tenant, unique
from tests.oidc.conftest import audience, events, set_policy
from tests.oidc_issuer import LocalIssuer, new_key
from tests.package_helpers import basic, bearer, packages_path, simple_path


def policy(issuer: LocalIssuer) -> list[dict[str, Any]]:
    return [
        {  # read-only: a pipeline that only installs
            "iss": issuer.url,
            "scopes": ["read_packages"],
            "claims": {"pipeline_slug": "reader"},
        },
        {
            "iss": issuer.url,
            "scopes": ["read_packages", "write_packages"],
            "claims": {
                "pipeline_slug": {"in": ["deploy", "release"]},
                "build_branch": {"not_in": ["experimental"]},
            },
        },
    ]


@pytest.fixture
def registry_owner(oidc_client: httpx.Client, owner: Tenant, issuer: LocalIssuer) -> Tenant:
    set_policy(oidc_client, owner, policy(issuer))
    return owner


def wheel(tmp_path: Path) -> Path:
    directory = tmp_path / "dist"
    directory.mkdir(exist_ok=True)
    return build_wheel(directory, "oidc-pkg", "1.0.0", value=uuid.uuid4().hex)


def publish_with(client: httpx.Client, tenant: Tenant, token: str, path: Path) -> httpx.Response:
    return client.post(
        packages_path(tenant.org, tenant.registry),
        headers=bearer(token),
        files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
    )


def refusal_reasons(server: InProcessServer, client: httpx.Client, tenant: Tenant) -> list[str]:
    return [
        event["data"]["reason"] for event in events(server, client, tenant, "OIDC_TOKEN_REFUSED")
    ]


# --------------------------------------------------------------------------- accepted


def test_a_job_installs_with_its_token_as_password_or_bearer_and_its_first_use_is_audited(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    registry_owner: Tenant,
    issuer: LocalIssuer,
) -> None:
    token = issuer.token(audience(oidc_server, registry_owner))
    path = simple_path(registry_owner.org, registry_owner.registry)
    for headers in (basic(token), bearer(token), basic(token)):
        response = oidc_client.get(path, headers=headers)
        assert response.status_code == 200, response.text

    used = events(oidc_server, oidc_client, registry_owner, "OIDC_TOKEN_USED")
    assert len(used) == 1  # the first use, not every request
    event = used[0]
    assert event["actor"]["type"] == "oidc"
    assert event["subject"]["type"] == "OidcToken"
    assert event["registry"]["slug"] == registry_owner.registry
    data = event["data"]
    assert data["iss"] == issuer.url
    assert data["pipeline_slug"] == "deploy"
    assert data["build_number"] == 42
    assert data["action"] == "install"
    assert data["scopes"] == ["read_packages", "write_packages"]
    assert data["statement"] == 1
    assert token not in str(event)
    assert token.split(".")[2] not in str(event)  # nor its signature

    another = issuer.token(audience(oidc_server, registry_owner))
    assert oidc_client.get(path, headers=basic(another)).status_code == 200
    assert len(events(oidc_server, oidc_client, registry_owner, "OIDC_TOKEN_USED")) == 2


def test_a_statement_that_grants_write_packages_publishes_and_the_package_installs(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    registry_owner: Tenant,
    issuer: LocalIssuer,
    tmp_path: Path,
) -> None:
    token = issuer.token(audience(oidc_server, registry_owner), pipeline_slug="release")
    published = publish_with(oidc_client, registry_owner, token, wheel(tmp_path))
    assert published.status_code == 200, published.text
    assert (published.json()["name"], published.json()["version"]) == ("oidc-pkg", "1.0.0")

    page = oidc_client.get(
        f"{simple_path(registry_owner.org, registry_owner.registry)}oidc-pkg/",
        headers=basic(token),
    )
    assert page.status_code == 200
    assert "oidc_pkg-1.0.0-py3-none-any.whl" in page.text
    listed = oidc_client.get(
        packages_path(registry_owner.org, registry_owner.registry), headers=bearer(token)
    )
    assert listed.status_code == 200, listed.text
    assert [item["name"] for item in listed.json()["items"]] == ["oidc-pkg"]
    used = events(oidc_server, oidc_client, registry_owner, "OIDC_TOKEN_USED")
    assert [event["data"]["action"] for event in used] == ["publish"]
    # Its statement grants no delete_packages.
    package = (
        f"{packages_path(registry_owner.org, registry_owner.registry)}/{published.json()['id']}"
    )
    deleted = oidc_client.delete(package, headers=bearer(token))
    assert deleted.status_code == 401, deleted.text
    assert refusal_reasons(oidc_server, oidc_client, registry_owner) == ["scope_not_granted"]
    assert oidc_client.get(package, headers=bearer(token)).status_code == 200


def test_the_presigned_flow_publishes_with_the_same_token(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    registry_owner: Tenant,
    issuer: LocalIssuer,
    tmp_path: Path,
) -> None:
    token = issuer.token(audience(oidc_server, registry_owner))
    base = packages_path(registry_owner.org, registry_owner.registry)
    presigned = oidc_client.post(f"{base}/upload", headers=bearer(token))
    assert presigned.status_code == 200, presigned.text
    form = presigned.json()["form"]
    path = wheel(tmp_path)
    uploaded = oidc_client.post(
        form["url"],
        data=form["data"],
        files={form["file_input"]: (path.name, path.read_bytes(), "application/octet-stream")},
    )
    assert uploaded.status_code == 204, uploaded.text
    package_url = f"{form['url']}/{form['data']['key'].replace('${filename}', path.name)}"
    # Another token of the same job may not finalize it: the upload is this token's.
    other = issuer.token(audience(oidc_server, registry_owner))
    stolen = oidc_client.post(base, headers=bearer(other), data={"package_url": package_url})
    assert stolen.status_code == 404, stolen.text
    finalized = oidc_client.post(base, headers=bearer(token), data={"package_url": package_url})
    assert finalized.status_code == 200, finalized.text
    assert finalized.json()["name"] == "oidc-pkg"


def test_an_oidc_token_sees_only_its_own_registry_and_no_user_api(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    oidc_seeder: Seeder,
    registry_owner: Tenant,
    issuer: LocalIssuer,
) -> None:
    other = oidc_seeder.services.registries.create(registry_owner.org, "Other", slug=unique("reg"))
    token = issuer.token(audience(oidc_server, registry_owner))
    # The REST API's other doors do not take it at all.
    for path in (
        "/v2/user",
        f"/v2/packages/organizations/{registry_owner.org}/registries",
        f"{registry_owner.tokens_path}",
    ):
        assert oidc_client.get(path, headers=bearer(token)).status_code == 401, path
    # Copying into another registry of the organization: that registry is not its own.
    listed = oidc_client.get(packages_path(registry_owner.org, other.slug), headers=bearer(token))
    assert listed.status_code == 401  # its aud names the other registry
    assert listed.json()["message"].startswith("OIDC token refused")


# --------------------------------------------------------------------------- refused


def _install_refused(
    server: InProcessServer,
    client: httpx.Client,
    tenant: Tenant,
    token: str,
    reason: str,
) -> None:
    response = client.get(simple_path(tenant.org, tenant.registry), headers=basic(token))
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.json()["message"].startswith("OIDC token refused: ")
    assert refusal_reasons(server, client, tenant) == [reason]


REFUSALS: dict[str, Any] = {
    "wrong_signature": lambda issuer, aud: issuer.token(aud, key=new_key(), kid=issuer.current.kid),
    "alg_none": lambda issuer, aud: issuer.unsigned_token(aud),
    "hmac_with_the_public_key": lambda issuer, aud: issuer.hmac_token_with_public_key(aud),
    "wrong_iss": lambda issuer, aud: issuer.token(aud, iss="http://127.0.0.1:9/not-trusted"),
    "wrong_aud": lambda issuer, aud: issuer.token("https://packages.buildkite.com/acme/x"),
    "expired": lambda issuer, aud: issuer.token(
        aud, iat=int(time.time()) - 400, nbf=int(time.time()) - 400, exp=int(time.time()) - 100
    ),
    "not_yet_valid_nbf": lambda issuer, aud: issuer.token(
        aud, nbf=int(time.time()) + 120, exp=int(time.time()) + 240
    ),
    "not_yet_valid_iat": lambda issuer, aud: issuer.token(
        aud, iat=int(time.time()) + 120, nbf=None, exp=int(time.time()) + 300
    ),
    "lifetime_over_5_minutes": lambda issuer, aud: issuer.token(aud, exp=int(time.time()) + 301),
    "no_matching_statement": lambda issuer, aud: issuer.token(aud, pipeline_slug="other"),
    "a_claim_in_not_in": lambda issuer, aud: issuer.token(aud, build_branch="experimental"),
    "no_exp": lambda issuer, aud: issuer.token(aud, exp=None),
}
REASONS = {
    "wrong_signature": "bad_signature",
    "alg_none": "algorithm_not_allowed",
    "hmac_with_the_public_key": "algorithm_not_allowed",
    "wrong_iss": "untrusted_issuer",
    "wrong_aud": "wrong_audience",
    "expired": "expired",
    "not_yet_valid_nbf": "not_yet_valid",
    "not_yet_valid_iat": "not_yet_valid",
    "lifetime_over_5_minutes": "lifetime_too_long",
    "no_matching_statement": "no_matching_statement",
    "a_claim_in_not_in": "no_matching_statement",
    "no_exp": "missing_claim",
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_install_is_a_401_with_its_reason_in_the_audit_log(
    case: str,
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    registry_owner: Tenant,
    issuer: LocalIssuer,
) -> None:
    token = REFUSALS[case](issuer, audience(oidc_server, registry_owner))
    _install_refused(oidc_server, oidc_client, registry_owner, token, REASONS[case])
    event = events(oidc_server, oidc_client, registry_owner, "OIDC_TOKEN_REFUSED")[0]
    assert event["data"]["action"] == "install"
    assert event["data"]["requested_registry"] == f"{registry_owner.org}/{registry_owner.registry}"
    assert token not in str(event)


def test_another_registrys_audience_is_refused_as_such(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    oidc_seeder: Seeder,
    registry_owner: Tenant,
    issuer: LocalIssuer,
) -> None:
    other = oidc_seeder.services.registries.create(registry_owner.org, "Other", slug=unique("reg"))
    token = issuer.token(audience(oidc_server, registry_owner, other.slug))
    _install_refused(oidc_server, oidc_client, registry_owner, token, "wrong_registry")


def test_a_registry_without_a_policy_accepts_no_oidc_token(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    owner: Tenant,
    issuer: LocalIssuer,
) -> None:
    _install_refused(
        oidc_server, oidc_client, owner, issuer.token(audience(oidc_server, owner)), "no_policy"
    )


def test_an_unknown_kid_is_refused_after_one_refresh_of_the_keys_at_most_so_often(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    registry_owner: Tenant,
    issuer: LocalIssuer,
) -> None:
    aud = audience(oidc_server, registry_owner)
    path = simple_path(registry_owner.org, registry_owner.registry)
    assert oidc_client.get(path, headers=basic(issuer.token(aud))).status_code == 200
    time.sleep(1.1)  # past REGISTRY_TOKENS_OIDC_JWKS_REFRESH_SECONDS
    before = issuer.jwks_requests
    stranger = new_key()
    for _ in range(3):
        response = oidc_client.get(path, headers=basic(issuer.token(aud, key=stranger)))
        assert response.status_code == 401
    assert issuer.jwks_requests == before + 1  # refreshed once, not once per token
    assert refusal_reasons(oidc_server, oidc_client, registry_owner) == ["unknown_key"] * 3


def test_a_rotated_key_is_fetched_when_its_first_token_arrives(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    registry_owner: Tenant,
    issuer: LocalIssuer,
) -> None:
    aud = audience(oidc_server, registry_owner)
    path = simple_path(registry_owner.org, registry_owner.registry)
    old = issuer.current
    assert oidc_client.get(path, headers=basic(issuer.token(aud))).status_code == 200
    time.sleep(1.1)
    issuer.rotate()
    assert oidc_client.get(path, headers=basic(issuer.token(aud))).status_code == 200
    # The old key is withdrawn and the keys were just fetched: its tokens are refused.
    response = oidc_client.get(path, headers=basic(issuer.token(aud, key=old)))
    assert response.status_code == 401
    assert refusal_reasons(oidc_server, oidc_client, registry_owner) == ["unknown_key"]


def test_an_issuer_that_is_down_fails_closed(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    registry_owner: Tenant,
    issuer: LocalIssuer,
    dead_issuer: LocalIssuer,
) -> None:
    set_policy(
        oidc_client,
        registry_owner,
        [*policy(issuer), {"iss": dead_issuer.url, "claims": {"pipeline_slug": "deploy"}}],
    )
    token = dead_issuer.token(audience(oidc_server, registry_owner))
    _install_refused(oidc_server, oidc_client, registry_owner, token, "issuer_unavailable")


def test_a_read_only_statement_cannot_publish(
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    registry_owner: Tenant,
    issuer: LocalIssuer,
    tmp_path: Path,
) -> None:
    token = issuer.token(audience(oidc_server, registry_owner), pipeline_slug="reader")
    path = simple_path(registry_owner.org, registry_owner.registry)
    assert oidc_client.get(path, headers=basic(token)).status_code == 200  # it may read
    base = packages_path(registry_owner.org, registry_owner.registry)
    for response in (
        publish_with(oidc_client, registry_owner, token, wheel(tmp_path)),
        oidc_client.post(f"{base}/upload", headers=bearer(token)),
    ):
        assert response.status_code == 401, response.text
        assert "does not grant the scope" in response.json()["message"]
    refused = events(oidc_server, oidc_client, registry_owner, "OIDC_TOKEN_REFUSED")
    assert [(e["data"]["reason"], e["data"]["action"]) for e in refused] == [
        ("scope_not_granted", "publish")
    ] * 2
    listed = oidc_client.get(base, headers=registry_owner.auth())
    assert listed.json()["items"] == []


@pytest.mark.parametrize("case", ["wrong_signature", "expired", "a_claim_in_not_in"])
def test_a_refused_publish_is_a_401_with_its_reason(
    case: str,
    oidc_server: InProcessServer,
    oidc_client: httpx.Client,
    registry_owner: Tenant,
    issuer: LocalIssuer,
    tmp_path: Path,
) -> None:
    token = REFUSALS[case](issuer, audience(oidc_server, registry_owner))
    response = publish_with(oidc_client, registry_owner, token, wheel(tmp_path))
    assert response.status_code == 401, response.text
    assert response.json()["message"].startswith("OIDC token refused: ")
    refused = events(oidc_server, oidc_client, registry_owner, "OIDC_TOKEN_REFUSED")
    assert [(e["data"]["reason"], e["data"]["action"]) for e in refused] == [
        (REASONS[case], "publish")
    ]
