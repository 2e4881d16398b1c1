"""Requests racing the deletion of their registry, on threads against a real server."""

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.harness import ServerProcess, Tenant
from tests.package_helpers import bearer, registry_path

# One request into the registry, given a client and the tenant's read-write secret.
Attempt = Callable[[httpx.Client, str], httpx.Response]


def race_registry_deletion(
    server: ServerProcess,
    tenant: Tenant,
    slug: str,
    attempts: Sequence[Attempt],
    delays: Sequence[float],
) -> list[str]:
    """Runs every attempt while registry ``slug`` is deleted, all released at once (each
    after its own small delay; ``delays[-1]`` is the deletion's): what each answered, as
    ``"<status> <message>"``. The deletion must succeed."""
    secret = tenant.tokens["rw"]
    start = threading.Barrier(len(attempts) + 1)

    def attempter(number: int) -> str:
        with server.client(timeout=60) as client:
            start.wait()
            threading.Event().wait(delays[number])
            response = attempts[number](client, secret)
            return f"{response.status_code} {response.json().get('message', '')}"

    def deleter() -> int:
        with server.client(timeout=60) as client:
            start.wait()
            threading.Event().wait(delays[-1])
            deleted = client.delete(registry_path(tenant.org, slug), headers=bearer(secret))
            return deleted.status_code

    with ThreadPoolExecutor(len(attempts) + 1) as pool:
        answers = [pool.submit(attempter, number) for number in range(len(attempts))]
        deletion = pool.submit(deleter)
        assert deletion.result() == 200
        return [future.result() for future in answers]
