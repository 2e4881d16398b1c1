"""Nothing fast may serve a stale answer: typed queries on kept connections and the list
positions remembered per process are never older than the last commit.

A change committed through one instance is seen by the very next request to another
instance sharing the database, however warm that instance's connections are; unusual
spellings of the list's query are read as the same numbers.
"""

from pathlib import Path

import httpx

from tests.distributions import build_wheel
from tests.e2e.test_concurrency import shared_database_servers
from tests.harness import Seeder, ServerProcess, Tenant
from tests.package_helpers import (
    admin_tenant,
    basic,
    bearer,
    create_registry_token,
    published,
    simple_path,
)

ROUNDS = 15


def _install_page(client: httpx.Client, tenant: Tenant, secret: str) -> int:
    return client.get(
        f"{simple_path(tenant.org, tenant.registry)}hot-pkg/", headers=basic(secret)
    ).status_code


def test_a_change_through_one_instance_is_seen_at_once_by_another(tmp_path: Path) -> None:
    with shared_database_servers(tmp_path, 2) as (first, second):
        seeder = Seeder(first)
        tenant = admin_tenant(seeder)
        api = tenant.tokens["rw"]
        with (
            httpx.Client(base_url=first.base_url) as a,
            httpx.Client(base_url=second.base_url) as b,
        ):
            published(a, tenant.org, tenant.registry, api, build_wheel(tmp_path, "hot-pkg", "1.0"))
            for round_number in range(ROUNDS):
                created = create_registry_token(
                    a, tenant.org, tenant.registry, api, f"r{round_number}"
                )
                token_path = f"{tenant.tokens_path}/{created['id']}"
                # Warm the second instance: its kept connection has read this token as live.
                assert _install_page(b, tenant, created["token"]) == 200
                assert b.get(token_path, headers=bearer(api)).status_code == 200
                assert a.delete(token_path, headers=bearer(api)).status_code == 200
                # The very next requests to the second instance see the deletion.
                assert _install_page(b, tenant, created["token"]) == 401
                assert b.get(token_path, headers=bearer(api)).status_code == 404
                listed = b.get(tenant.tokens_path, headers=bearer(api)).json()
                assert created["id"] not in [token["id"] for token in listed]

            # Rotation without grace: the old secret stops at once on the other instance.
            created = create_registry_token(a, tenant.org, tenant.registry, api, "rotated")
            assert _install_page(b, tenant, created["token"]) == 200
            rotated = a.post(f"{tenant.tokens_path}/{created['id']}/rotate", headers=bearer(api))
            assert rotated.status_code == 200, rotated.text
            assert _install_page(b, tenant, created["token"]) == 401
            assert _install_page(b, tenant, rotated.json()["token"]) == 200

            # A revoked API token stops authenticating at once on the other instance.
            spare = seeder.api_token(tenant.email)
            assert b.get("/v2/access-token", headers=bearer(spare)).status_code == 200
            assert a.delete("/v2/access-token", headers=bearer(spare)).status_code == 204
            assert b.get("/v2/access-token", headers=bearer(spare)).status_code == 401
            assert b.get(tenant.tokens_path, headers=bearer(spare)).status_code == 401
        seeder.services.database.dispose()


def test_declined_list_queries_get_fastapis_answers(server: ServerProcess, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    with httpx.Client(base_url=server.base_url, headers=tenant.auth()) as client:
        for number in range(3):
            assert (
                client.post(tenant.tokens_path, json={"description": f"t{number}"}).status_code
                == 200
            )
        plain = client.get(tenant.tokens_path, params={"page": "1", "per_page": "2"})
        assert plain.status_code == 200
        # Unusual spellings of the same numbers read as those numbers.
        for query in ("page=01&per_page=2", "page=1&per_page=+2", "per_page=2&page=1&page=1"):
            declined = client.get(f"{tenant.tokens_path}?{query}")
            assert declined.status_code == 200, (query, declined.text)
            assert declined.json() == plain.json()
        for query, field in (
            ("page=0", "page"),
            ("per_page=x", "per_page"),
            ("state=old", "state"),
        ):
            refused = client.get(f"{tenant.tokens_path}?{query}")
            assert refused.status_code == 422, (query, refused.text)
            assert [error["field"] for error in refused.json()["errors"]] == [field]


def test_declined_create_bodies_get_fastapis_answers(server: ServerProcess, seeder: Seeder) -> None:
    tenant = seeder.tenant()
    with httpx.Client(base_url=server.base_url, headers=tenant.auth()) as client:
        before = client.get(tenant.tokens_path).json()
        blank = client.post(tenant.tokens_path, json={"description": "   "})
        assert blank.status_code == 422
        assert blank.json()["errors"][0]["field"] == "description"
        not_json = client.post(
            tenant.tokens_path, content=b"description=x", headers={"Content-Type": "text/plain"}
        )
        assert not_json.status_code == 415
        broken = client.post(
            tenant.tokens_path,
            content=b'{"description": "x"',
            headers={"Content-Type": "application/json"},
        )
        assert broken.status_code == 400
        assert client.get(tenant.tokens_path).json() == before


def _pages_agree_with_the_whole_list(client: httpx.Client, tenant: Tenant, per_page: int) -> None:
    """Every page (served twice: the second time from remembered positions) is its slice
    of the whole list, and the ``last`` link counts the whole list."""
    whole = [
        token["id"] for token in client.get(tenant.tokens_path, params={"per_page": 100}).json()
    ]
    last_page = max(1, -(-len(whole) // per_page))
    for page in range(1, last_page + 1):
        for _ in range(2):
            response = client.get(tenant.tokens_path, params={"page": page, "per_page": per_page})
            assert response.status_code == 200
            expected = whole[(page - 1) * per_page : page * per_page]
            assert [token["id"] for token in response.json()] == expected, page
            if page < last_page:
                assert (
                    f'page={last_page}&per_page={per_page}>; rel="last"' in response.headers["link"]
                )


def test_remembered_counts_and_page_starts_follow_every_change(tmp_path: Path) -> None:
    with shared_database_servers(tmp_path, 2) as (first, second):
        seeder = Seeder(first)
        tenant = seeder.tenant()
        with (
            httpx.Client(base_url=first.base_url, headers=tenant.auth()) as a,
            httpx.Client(base_url=second.base_url, headers=tenant.auth()) as b,
        ):
            ids = [
                a.post(tenant.tokens_path, json={"description": f"t{n}"}).json()["id"]
                for n in range(22)
            ]
            _pages_agree_with_the_whole_list(b, tenant, per_page=4)
            # A newer token shifts every page by one; a deleted one back. Each change is
            # made through the other instance, after this one has remembered positions.
            a.post(tenant.tokens_path, json={"description": "newest"})
            _pages_agree_with_the_whole_list(b, tenant, per_page=4)
            assert a.delete(f"{tenant.tokens_path}/{ids[20]}").status_code == 200
            assert a.delete(f"{tenant.tokens_path}/{ids[3]}").status_code == 200
            _pages_agree_with_the_whole_list(b, tenant, per_page=4)
            _pages_agree_with_the_whole_list(b, tenant, per_page=5)
        seeder.services.database.dispose()
