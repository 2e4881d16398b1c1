"""Rate limits of one instance, in process: per organization, per client address, and the
headers on every REST response. Limits shared by two instances are in tests/e2e."""

import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.harness import Seeder, Server, in_process_server

WINDOW_SECONDS = 6


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


def wait_for_fresh_window(min_seconds_left: float = 4.0) -> None:
    """Start a burst early in a window, so it cannot straddle two."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < min_seconds_left:
        time.sleep(left + 0.05)


def burst(
    servers: Sequence[Server], path: str, headers: dict[str, str], count: int
) -> list[httpx.Response]:
    clients = [s.client(headers=headers, timeout=30) for s in servers]
    try:
        return [clients[n % len(clients)].get(path) for n in range(count)]
    finally:
        for client in clients:
            client.close()


def test_another_organizations_allowance_cannot_be_spent(tmp_path: Path) -> None:
    """Requests naming an organization the caller can't see don't count against it."""
    with in_process_server(tmp_path, env=limits(rate_limit_per_organization=5)) as server:
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
    with in_process_server(tmp_path, env=limits(rate_limit_per_client=3)) as server:
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
    with in_process_server(tmp_path, env=env) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant()
        with server.client(timeout=30) as http:
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
