"""The seed's five curl calls, and the exact shape of every response."""

import base64
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.harness import Tenant

TOKEN_KEYS = [
    "id",
    "graphql_id",
    "description",
    "url",
    "created_at",
    "created_by",
    "organization",
    "registry",
]
# Our additions come after the seed's keys (issue 5); create and rotate end with the secret.
EXTENSION_KEYS = [
    "expires_at",
    "allowed_cidrs",
    "last_used_at",
    "last_used_ip",
    # Token limits and usage (issue 16).
    "allowed_packages",
    "not_before",
    "max_downloads",
    "max_clients",
    "max_bytes",
    "quota_period",
    "disabled_at",
    "usage",
]
USER_KEYS = ["id", "graphql_id", "name", "email", "avatar_url", "created_at"]
ORG_KEYS = ["id", "slug", "url", "web_url"]
REGISTRY_KEYS = ["id", "graphql_id", "slug", "url", "web_url"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def parse_timestamp(value: str) -> datetime:
    assert TIMESTAMP.match(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def assert_uuid7_matches(identifier: str, created_at: str) -> None:
    parsed = uuid.UUID(identifier)
    assert parsed.version == 7
    millis = parsed.int >> 80
    assert millis == int(parse_timestamp(created_at).timestamp() * 1000 + 0.5)


def assert_graphql_id(encoded: str, type_name: str, identifier: str) -> None:
    assert base64.b64decode(encoded, validate=True).decode() == f"{type_name}---{identifier}"


def assert_token_shape(body: dict[str, Any], *, with_secret: bool) -> None:
    assert list(body) == TOKEN_KEYS + EXTENSION_KEYS + (["token"] if with_secret else [])
    assert list(body["created_by"]) == USER_KEYS
    assert list(body["organization"]) == ORG_KEYS
    assert list(body["registry"]) == REGISTRY_KEYS
    assert_uuid7_matches(body["id"], body["created_at"])
    assert_graphql_id(body["graphql_id"], "RegistryToken", body["id"])
    assert_graphql_id(body["created_by"]["graphql_id"], "User", body["created_by"]["id"])
    assert_graphql_id(body["registry"]["graphql_id"], "Registry", body["registry"]["id"])
    assert_uuid7_matches(body["created_by"]["id"], body["created_by"]["created_at"])
    assert uuid.UUID(body["registry"]["id"]).version == 7


def test_seed_curl_calls(client: httpx.Client, tenant: Tenant) -> None:
    headers = {**tenant.auth(), "Content-Type": "application/json"}
    created = client.post(tenant.tokens_path, headers=headers, content='{"description": "Usher"}')
    assert created.status_code == 200
    body = created.json()
    assert_token_shape(body, with_secret=True)
    assert body["description"] == "Usher"
    assert body["token"].startswith("bkpt_")
    assert body["url"] == f"{client.base_url}{tenant.tokens_path}/{body['id']}"
    assert body["created_by"]["email"] == tenant.email
    assert body["created_by"]["avatar_url"] is None
    assert body["organization"]["slug"] == tenant.org
    assert body["registry"]["slug"] == tenant.registry

    listed = client.get(tenant.tokens_path, headers=headers)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()] == [body["id"]]
    for item in listed.json():
        assert_token_shape(item, with_secret=False)

    fetched = client.get(f"{tenant.tokens_path}/{body['id']}", headers=tenant.auth())
    assert fetched.status_code == 200
    assert_token_shape(fetched.json(), with_secret=False)
    assert fetched.json() == {k: v for k, v in body.items() if k != "token"}

    updated = client.post(
        f"{tenant.tokens_path}/{body['id']}", headers=headers, content='{"description": "Usher"}'
    )
    assert updated.status_code == 200
    assert_token_shape(updated.json(), with_secret=False)

    deleted = client.delete(f"{tenant.tokens_path}/{body['id']}", headers=tenant.auth())
    assert deleted.status_code == 200
    assert (
        client.get(f"{tenant.tokens_path}/{body['id']}", headers=tenant.auth()).status_code == 404
    )


def test_update_accepts_patch_and_put_and_omitted_description(
    client: httpx.Client, tenant: Tenant
) -> None:
    created = client.post(tenant.tokens_path, headers=tenant.auth(), json={"description": "a"})
    url = f"{tenant.tokens_path}/{created.json()['id']}"
    assert (
        client.patch(url, headers=tenant.auth(), json={"description": "b"}).json()["description"]
        == "b"
    )
    assert (
        client.put(url, headers=tenant.auth(), json={"description": "c"}).json()["description"]
        == "c"
    )
    unchanged = client.patch(url, headers=tenant.auth(), json={})
    assert unchanged.status_code == 200
    assert unchanged.json()["description"] == "c"
    assert "token" not in unchanged.json()


def test_every_url_resolves_to_the_object_it_names(client: httpx.Client, tenant: Tenant) -> None:
    body = client.post(tenant.tokens_path, headers=tenant.auth(), json={"description": "u"}).json()
    token = client.get(body["url"], headers=tenant.auth())
    assert token.status_code == 200
    assert token.json()["id"] == body["id"]
    registry = client.get(body["registry"]["url"], headers=tenant.auth())
    assert registry.status_code == 200
    assert registry.json()["id"] == body["registry"]["id"]
    assert registry.json()["url"] == body["registry"]["url"]
    organization = client.get(body["organization"]["url"], headers=tenant.auth())
    assert organization.status_code == 200
    assert organization.json()["id"] == body["organization"]["id"]
    assert organization.json()["url"] == body["organization"]["url"]
    assert_graphql_id(organization.json()["graphql_id"], "Organization", body["organization"]["id"])
    assert_uuid7_matches(registry.json()["id"], parse_timestamp_of_registry(registry.json()))


def parse_timestamp_of_registry(registry: dict[str, Any]) -> str:
    """Registries carry no created_at on the wire; read it from the id and format it back."""
    millis = uuid.UUID(registry["id"]).int >> 80
    moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"


def test_access_token_and_user_endpoints(client: httpx.Client, seeder: Any, tenant: Tenant) -> None:
    whoami = client.get("/v2/access-token", headers=tenant.auth())
    assert whoami.status_code == 200
    assert sorted(whoami.json()["scopes"]) == ["read_registries", "write_registries"]
    uuid.UUID(whoami.json()["uuid"])
    # /v2/user needs read_user, as on Buildkite.
    forbidden = client.get("/v2/user", headers=tenant.auth())
    assert forbidden.status_code == 403
    assert forbidden.json() == {"message": "Your access token doesn't have the read_user scope"}
    reader = seeder.api_token(tenant.email, ("read_user",))
    me = client.get("/v2/user", headers={"Authorization": f"Bearer {reader}"})
    assert me.status_code == 200
    assert list(me.json()) == USER_KEYS
    assert me.json()["email"] == tenant.email

    revoked = client.delete("/v2/access-token", headers={"Authorization": f"Bearer {reader}"})
    assert revoked.status_code == 204
    again = client.get("/v2/access-token", headers={"Authorization": f"Bearer {reader}"})
    assert again.status_code == 401
    assert "message" in again.json()
