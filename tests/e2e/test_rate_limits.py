"""Rate limits shared by two instances on one database (with and without Redis): real
server processes. The limits of one instance are tested in process, in tests/ratelimits."""

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from tests.harness import Seeder, ServerProcess, free_port, running_server, scratch_database
from tests.ratelimits.test_rate_limits import WINDOW_SECONDS, burst, limits, wait_for_fresh_window

REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def two_instances(workdir: Path, env: dict[str, str]) -> Iterator[list[ServerProcess]]:
    with scratch_database(workdir) as url, ExitStack() as stack:
        first = stack.enter_context(running_server(workdir / "a", url, env=env))
        shared = {**env, "REGISTRY_TOKENS_SECRET_KEY": first.env["REGISTRY_TOKENS_SECRET_KEY"]}
        second = stack.enter_context(running_server(workdir / "b", url, env=shared))
        yield [first, second]


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
