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


def test_refused_uploads_count_like_every_other_rest_request(tmp_path: Path) -> None:
    """Issue 11: a publish refused for its token (401: none, junk, malformed; 403: a
    token without write_packages) counts against the client's address (401) or the user
    (403), with the RateLimit headers, and 429 beyond the limit, sharing the count with
    every other REST request: big bodies included, since nothing of one is read first."""
    env = limits(rate_limit_per_client=4, rate_limit_per_user=3)
    with in_process_server(tmp_path, env=env) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant(scopes=("read_registries", "read_packages"))
        upload = f"/v2/packages/organizations/{tenant.org}/registries/{tenant.registry}/packages"
        files = {"file": ("hello_pkg-1.0.0-py3-none-any.whl", b"x" * (2 * 1024 * 1024))}
        wait_for_fresh_window()
        with server.client(timeout=30) as http:
            junk = [
                http.get("/v2/user", headers={"Authorization": "Bearer junk"}),
                http.post(upload, headers={"Authorization": "Bearer junk"}, files=files),
                http.post(upload, files=files),
                http.post(upload, headers={"Authorization": "Basic Zm9vOmJhcg=="}, files=files),
                http.post(upload, headers={"Authorization": "Bearer junk"}, files=files),
                http.get("/v2/user", headers={"Authorization": "Bearer junk"}),
            ]
            scoped = [http.post(upload, headers=tenant.auth(), files=files) for _ in range(4)]
            scoped.append(http.get("/v2/user", headers=tenant.auth()))
        assert [r.status_code for r in junk] == [401, 401, 401, 401, 429, 429]
        assert [r.headers["RateLimit-Remaining"] for r in junk] == ["3", "2", "1", "0", "0", "0"]
        assert junk[4].json()["limit"] == 4
        assert junk[4].headers["Retry-After"] == junk[4].headers["RateLimit-Reset"]
        assert [r.status_code for r in scoped] == [403, 403, 403, 429, 429]
        assert [r.headers["RateLimit-Remaining"] for r in scoped] == ["2", "1", "0", "0", "0"]
        for response in junk + scoped:
            assert "message" in response.json()
            assert response.headers["RateLimit-Limit"] in ("3", "4")
        seeder.services.database.dispose()
