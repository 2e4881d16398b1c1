"""Many clients, many processes, one database: nothing lost, nothing duplicated, no 5xx.

Runs on the backend under test (``REGISTRY_TOKENS_TEST_BACKEND``): two instances on two
ports sharing one database, and one instance with ``--workers 2``.
"""

import random
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.harness import Seeder, ServerProcess, Tenant, running_server, scratch_database

CLIENTS = 8
OPERATIONS_PER_CLIENT = 40


@dataclass
class Ledger:
    """What one client was told: the server's acknowledgements, and anything unexpected."""

    descriptions: dict[str, str] = field(default_factory=dict)  # live token id -> description
    created: int = 0
    deleted: int = 0
    problems: list[str] = field(default_factory=list)


def drive(client_number: int, base_urls: list[str], tenant: Tenant, seed: int) -> Ledger:
    """One client's mixed workload; it updates and deletes only the tokens it created."""
    rng = random.Random(seed)
    ledger = Ledger()
    clients = [httpx.Client(base_url=url, headers=tenant.auth(), timeout=60) for url in base_urls]
    try:
        for step in range(OPERATIONS_PER_CLIENT):
            http = rng.choice(clients)
            operation = rng.choices(["create", "update", "delete", "list"], [4, 3, 2, 1])[0]
            if operation != "create" and not ledger.descriptions:
                operation = "create"
            response: httpx.Response
            if operation == "create":
                description = f"client {client_number} step {step}"
                response = http.post(tenant.tokens_path, json={"description": description})
                if response.status_code == 200:
                    ledger.descriptions[response.json()["id"]] = description
                    ledger.created += 1
            elif operation == "update":
                token_id = rng.choice(sorted(ledger.descriptions))
                description = f"client {client_number} step {step} updated"
                response = http.patch(
                    f"{tenant.tokens_path}/{token_id}", json={"description": description}
                )
                if response.status_code == 200:
                    ledger.descriptions[token_id] = description
            elif operation == "delete":
                token_id = rng.choice(sorted(ledger.descriptions))
                response = http.delete(f"{tenant.tokens_path}/{token_id}")
                if response.status_code == 200:
                    del ledger.descriptions[token_id]
                    ledger.deleted += 1
            else:
                response = http.get(tenant.tokens_path, params={"per_page": 100})
            if response.status_code != 200:
                ledger.problems.append(f"{operation}: {response.status_code} {response.text}")
    finally:
        for http in clients:
            http.close()
    return ledger


def all_tokens(base_url: str, tenant: Tenant) -> list[dict[str, str]]:
    tokens: list[dict[str, str]] = []
    with httpx.Client(base_url=base_url, headers=tenant.auth(), timeout=60) as http:
        page = 1
        while True:
            response = http.get(tenant.tokens_path, params={"page": page, "per_page": 100})
            assert response.status_code == 200
            tokens.extend(response.json())
            if 'rel="next"' not in response.headers.get("link", ""):
                return tokens
            page += 1


def run_workload_and_check(servers: list[ServerProcess], tenant: Tenant) -> None:
    base_urls = [server.base_url for server in servers]
    with ThreadPoolExecutor(CLIENTS) as pool:
        ledgers = list(
            pool.map(lambda n: drive(n, base_urls, tenant, seed=1000 + n), range(CLIENTS))
        )
    problems = [problem for ledger in ledgers for problem in ledger.problems]
    assert problems == []
    expected = {tid: text for ledger in ledgers for tid, text in ledger.descriptions.items()}
    assert sum(ledger.created for ledger in ledgers) - sum(
        ledger.deleted for ledger in ledgers
    ) == len(expected)
    for base_url in base_urls:  # every instance sees the same, complete state
        found = all_tokens(base_url, tenant)
        ids = [token["id"] for token in found]
        assert len(ids) == len(set(ids)), "a token is listed twice"
        assert {token["id"]: token["description"] for token in found} == expected


@contextmanager
def shared_database_servers(
    workdir: Path, count: int, serve_args: tuple[str, ...] = ()
) -> Iterator[list[ServerProcess]]:
    with scratch_database(workdir) as url, ExitStack() as stack:
        first = stack.enter_context(running_server(workdir / "a", url, serve_args=serve_args))
        servers = [first]
        for index in range(1, count):
            env = {"REGISTRY_TOKENS_SECRET_KEY": first.env["REGISTRY_TOKENS_SECRET_KEY"]}
            servers.append(
                stack.enter_context(
                    running_server(workdir / f"s{index}", url, env=env, serve_args=serve_args)
                )
            )
        yield servers


def test_two_instances_on_one_database_lose_nothing(tmp_path: Path) -> None:
    with shared_database_servers(tmp_path, 2) as servers:
        seeder = Seeder(servers[0])
        run_workload_and_check(servers, seeder.tenant())
        seeder.services.database.dispose()


def test_two_workers_lose_nothing(tmp_path: Path) -> None:
    with shared_database_servers(tmp_path, 1, serve_args=("--workers", "2")) as servers:
        seeder = Seeder(servers[0])
        run_workload_and_check(servers, seeder.tenant())
        seeder.services.database.dispose()


def test_every_answered_create_survives_sigkill(tmp_path: Path) -> None:
    with scratch_database(tmp_path) as url, running_server(tmp_path / "srv", url) as server:
        seeder = Seeder(server)
        tenant = seeder.tenant()
        acknowledged: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def burst() -> None:
            with httpx.Client(base_url=server.base_url, headers=tenant.auth(), timeout=10) as http:
                while not stop.is_set():
                    try:
                        response = http.post(tenant.tokens_path, json={"description": "burst"})
                    except httpx.HTTPError:
                        continue  # the server died mid-request: no acknowledgement
                    if response.status_code == 200:
                        with lock:
                            acknowledged.append(response.json()["id"])

        threads = [threading.Thread(target=burst) for _ in range(4)]
        for thread in threads:
            thread.start()
        while True:
            with lock:
                if len(acknowledged) >= 100:
                    break
            stop.wait(0.01)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        stop.set()
        for thread in threads:
            thread.join()

        server.start()
        stored = {token["id"] for token in all_tokens(server.base_url, tenant)}
        missing = set(acknowledged) - stored
        assert not missing, f"{len(missing)} acknowledged creates were lost"
        assert len(acknowledged) >= 100
        seeder.services.database.dispose()


@pytest.mark.parametrize("attempts", [20])
def test_concurrent_duplicate_slugs_are_refused_not_doubled(seeder: Seeder, attempts: int) -> None:
    """Races on unique names end in one winner and clear errors, never two rows or a crash."""
    from registry_tokens.kit.errors import ValidationFailed

    slug = f"race_{random.randrange(10**9)}"

    def create() -> str:
        try:
            seeder.services.organizations.create(slug)
        except ValidationFailed as error:
            return error.message
        return "created"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: create(), range(attempts)))
    assert outcomes.count("created") == 1
    assert set(outcomes) - {"created"} == {"Validation failed: Slug has already been taken"}
