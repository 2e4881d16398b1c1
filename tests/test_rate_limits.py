"""Rate limits shared by every instance: per organization, per user, per client address."""

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.harness import (
    Seeder,
    ServerProcess,
    free_port,
    running_server,
    scratch_database,
)

WINDOW_SECONDS = 6
REDIS_URL = "redis://127.0.0.1:6379/0"


def limits(**overrides: int | str) -> dict[str, str]:
    env = {
        "REGISTRY_TOKENS_RATE_LIMIT_WINDOW_SECONDS": str(WINDOW_SECONDS),
        "REGISTRY_TOKENS_RATE_LIMIT_PER_ORGANIZATION": "0",
        "REGISTRY_TOKENS_RATE_LIMIT_PER_USER": "0",
        "REGISTRY_TOKENS_RATE_LIMIT_PER_CLIENT": "0",
    }
    for name, value in overrides.items():
        env[f"REGISTRY_TOKENS_{name.upper()}"] = str(value)
    return env


@contextmanager
def two_instances(workdir: Path, env: dict[str, str]) -> Iterator[list[ServerProcess]]:
    with scratch_database(workdir) as url, ExitStack() as stack:
        first = stack.enter_context(running_server(workdir / "a", url, env=env))
        shared = {**env, "REGISTRY_TOKENS_SECRET_KEY": first.env["REGISTRY_TOKENS_SECRET_KEY"]}
        second = stack.enter_context(running_server(workdir / "b", url, env=shared))
        yield [first, second]


def wait_for_fresh_window(min_seconds_left: float = 4.0) -> None:
    """Start a burst early in a window, so it cannot straddle two."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < min_seconds_left:
        time.sleep(left + 0.05)


def burst(
    servers: list[ServerProcess], path: str, headers: dict[str, str], count: int
) -> list[httpx.Response]:
    clients = [httpx.Client(base_url=s.base_url, headers=headers, timeout=30) for s in servers]
    try:
        return [clients[n % len(clients)].get(path) for n in range(count)]
    finally:
        for client in clients:
            client.close()


def assert_shared_limit_holds(servers: list[ServerProcess], limit: int) -> None:
    seeder = Seeder(servers[0])
    tenant = seeder.tenant()
    wait_for_fresh_window()
    responses = burst(servers, tenant.tokens_path, tenant.auth(), limit + 5)
    statuses = [response.status_code for response in responses]
    assert statuses == [200] * limit + [429] * 5, statuses
    remaining = [int(r.headers["RateLimit-Remaining"]) for r in responses]
    assert remaining == [*range(limit - 1, -1, -1), 0, 0, 0, 0, 0]
    for response in responses:
        assert response.headers["RateLimit-Limit"] == str(limit)
        assert response.headers["RateLimit-Scope"] == "rest"
        assert 1 <= int(response.headers["RateLimit-Reset"]) <= WINDOW_SECONDS

    refused = responses[limit]
    body = refused.json()
    reset = int(refused.headers["RateLimit-Reset"])
    assert body == {
        "message": "You have exceeded your API rate limit. "
        f"Please wait {reset} seconds before making more requests.",
        "scope": "rest",
        "limit": limit,
        "current": limit + 1,
        "reset": reset,
    }
    assert refused.headers["Retry-After"] == str(reset)

    # The Go client's rule: wait RateLimit-Reset seconds, then try again.
    time.sleep(int(responses[-1].headers["RateLimit-Reset"]))
    retried = httpx.get(f"{servers[1].base_url}{tenant.tokens_path}", headers=tenant.auth())
    assert retried.status_code == 200
    assert int(retried.headers["RateLimit-Remaining"]) == limit - 1
    seeder.services.database.dispose()


def test_organization_limit_holds_across_two_instances(tmp_path: Path) -> None:
    with two_instances(tmp_path, limits(rate_limit_per_organization=12)) as servers:
        assert_shared_limit_holds(servers, 12)


def test_organization_limit_holds_across_two_instances_with_redis(tmp_path: Path) -> None:
    env = limits(rate_limit_per_organization=12, redis_url=REDIS_URL)
    with two_instances(tmp_path, env) as servers:
        assert_shared_limit_holds(servers, 12)


def test_a_redis_that_is_down_does_not_take_the_api_down(tmp_path: Path) -> None:
    """Counting falls back to the database: still shared, still enforced, and logged."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    env = limits(rate_limit_per_organization=12, redis_url=dead_redis)
    with two_instances(tmp_path, env) as servers:
        assert_shared_limit_holds(servers, 12)
        assert "Redis unavailable" in servers[0].log_path.read_text()


def test_user_limit_counts_every_organization_of_the_user(tmp_path: Path) -> None:
    with two_instances(tmp_path, limits(rate_limit_per_user=6)) as servers:
        seeder = Seeder(servers[0])
        first = seeder.tenant()
        second = seeder.tenant()
        seeder.services.organizations.add_member(second.org, first.email)
        token = {"Authorization": f"Bearer {first.tokens['rw']}"}
        wait_for_fresh_window()
        statuses = [
            response.status_code
            for path in (first.tokens_path, second.tokens_path)
            for response in burst(servers, path, token, 4)
        ]
        assert statuses == [200, 200, 200, 200, 200, 200, 429, 429]
        seeder.services.database.dispose()


def test_another_organizations_allowance_cannot_be_spent(tmp_path: Path) -> None:
    """Requests naming an organization the caller can't see don't count against it."""
    with running_server(tmp_path, env=limits(rate_limit_per_organization=5)) as server:
        seeder = Seeder(server)
        victim = seeder.tenant()
        attacker = seeder.tenant()
        wait_for_fresh_window()
        probes = burst([server], victim.tokens_path, attacker.auth(), 10)
        assert {response.status_code for response in probes} == {404}
        # Only the organization is limited here, and the victim's is not the attacker's.
        assert "RateLimit-Limit" not in probes[0].headers
        own = burst([server], victim.tokens_path, victim.auth(), 5)
        assert [response.status_code for response in own] == [200] * 5
        seeder.services.database.dispose()


def test_requests_without_a_valid_token_count_against_the_client(tmp_path: Path) -> None:
    with running_server(tmp_path, env=limits(rate_limit_per_client=3)) as server:
        wait_for_fresh_window()
        responses = burst([server], "/v2/user", {"Authorization": "Bearer nonsense"}, 5)
        assert [response.status_code for response in responses] == [401, 401, 401, 429, 429]
        assert [response.headers["RateLimit-Remaining"] for response in responses] == [
            "2",
            "1",
            "0",
            "0",
            "0",
        ]
        assert responses[-1].json()["limit"] == 3


def test_every_rest_response_carries_the_headers(tmp_path: Path) -> None:
    env = limits(
        rate_limit_per_organization=100, rate_limit_per_user=100, rate_limit_per_client=100
    )
    with running_server(tmp_path, env=env) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant()
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            created = http.post(
                tenant.tokens_path, headers=tenant.auth(), json={"description": "x"}
            )
            responses = [
                created,
                http.get(tenant.tokens_path, headers=tenant.auth()),
                http.get(created.json()["url"], headers=tenant.auth()),
                http.patch(created.json()["url"], headers=tenant.auth(), json={}),
                http.post(tenant.tokens_path, headers=tenant.auth(), json={"description": ""}),
                http.get("/v2/user", headers=tenant.auth()),
                http.get(f"/v2/organizations/{tenant.org}", headers=tenant.auth()),
                http.get("/v2/organizations/nope", headers=tenant.auth()),
                http.get("/v2/access-token"),
                http.delete(created.json()["url"], headers=tenant.auth()),
            ]
        assert [r.status_code for r in responses] == [
            200,
            200,
            200,
            200,
            422,
            403,
            200,
            404,
            401,
            200,
        ]
        headers = ["RateLimit-Scope", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]
        for response in responses:
            for header in headers:
                assert header in response.headers, (header, response.request.url)
        seeder.services.database.dispose()
