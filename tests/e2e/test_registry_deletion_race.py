"""Publishing into a registry while it is deleted: each publish lands before the deletion
(and its file goes with the registry) or finds no registry (404), never a 409 for a file
nobody published, and no file is left behind.

Real concurrency: clients on threads against a real server (its worker threads on
PostgreSQL run the transactions side by side; SQLite's writers take turns).
"""

import random
from pathlib import Path

from tests.distributions import build_wheel
from tests.e2e.races import Attempt, race_registry_deletion
from tests.harness import Seeder, ServerProcess, Tenant, running_server
from tests.package_helpers import (
    admin_tenant,
    publish,
    registries_path,
)

ROUNDS = 6
PUBLISHERS = 8


def _race(
    server: ServerProcess, tenant: Tenant, slug: str, wheels: list[Path], delays: list[float]
) -> list[str]:
    """Publishes every wheel into the registry while it is deleted: what each answered."""

    def publishing(wheel: Path) -> Attempt:
        return lambda client, secret: publish(client, tenant.org, slug, secret, wheel)

    return race_registry_deletion(server, tenant, slug, [publishing(w) for w in wheels], delays)


def test_publishes_racing_a_registry_deletion_get_200_or_404_and_leave_no_file(
    tmp_path: Path,
) -> None:
    storage = tmp_path / "packages"
    wheels = [build_wheel(tmp_path, f"racer{number}", "1.0") for number in range(PUBLISHERS)]
    rng = random.Random(11)
    with running_server(
        tmp_path, env={"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(storage)}
    ) as server:
        seeder = Seeder(server)
        tenant = admin_tenant(seeder)
        seeder.services.database.dispose()
        answers: list[str] = []
        for round_number in range(ROUNDS):
            with server.client() as client:
                created = client.post(
                    registries_path(tenant.org),
                    headers=tenant.auth(),
                    json={"name": f"Doomed {round_number}", "ecosystem": "python"},
                )
                assert created.status_code == 200, created.text
            delays = [rng.random() * 0.1 for _ in range(PUBLISHERS + 1)]
            answers.extend(_race(server, tenant, created.json()["slug"], wheels, delays))
        assert {answer.split(" ", 1)[0] for answer in answers} <= {"200", "404"}, answers
        for answer in answers:
            if answer.startswith("404"):
                assert answer == "404 No registry found"
        # Every registry is gone, so is every file it had, and nothing is left staged.
        left = [path for path in storage.rglob("*") if path.is_file()] if storage.exists() else []
        assert left == []
