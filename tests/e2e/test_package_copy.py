"""A copied package, end to end: pip installs it from the registry it was copied into, with
that registry's token, also once the source package is deleted; and copies racing the
deletion of their target registry land before it (their files go with it) or find no
registry, leaving no file behind.
"""

import random
import uuid
from pathlib import Path

import httpx

from tests.distributions import build_wheel
from tests.e2e.races import Attempt, race_registry_deletion
from tests.e2e.test_pip_install import (
    NAME,
    VERSION,
    assert_installed,
    assert_refused_with_401,
    fresh_venv,
    index_url,
    pip_install,
)
from tests.harness import Seeder, ServerProcess, Tenant, running_server, unique
from tests.package_helpers import (
    admin_tenant,
    bearer,
    create_registry_token,
    package_file,
    packages_path,
    published,
    registries_path,
    stored,
)

ROUNDS = 5
COPIERS = 6


def copy_path(org: str, registry: str, package_id: str, to: str) -> str:
    return f"{packages_path(org, registry)}/{package_id}/copy?to={to}"


def test_pip_installs_a_copy_with_its_registrys_token_after_the_source_is_deleted(
    package_server: ServerProcess,
    package_client: httpx.Client,
    package_seeder: Seeder,
    tmp_path: Path,
) -> None:
    owner = admin_tenant(package_seeder)
    target = package_seeder.services.registries.create(owner.org, "Target", slug=unique("reg"))
    value = uuid.uuid4().hex
    wheel = build_wheel(tmp_path, NAME, VERSION, value=value)
    source = published(package_client, owner.org, owner.registry, owner.tokens["rw"], wheel)
    copied = package_client.post(
        copy_path(owner.org, owner.registry, source["id"], target.slug),
        headers=bearer(owner.tokens["rw"]),
    )
    assert copied.status_code == 200, copied.text
    copy = copied.json()
    assert copy["registry"]["slug"] == target.slug

    token = create_registry_token(package_client, owner.org, target.slug, owner.tokens["rw"])
    url = index_url(package_server, owner.org, target.slug, token["token"])
    python = fresh_venv(tmp_path / "venv")
    assert_installed(pip_install(python, "--index-url", url, NAME), python, value)

    # The target's token opens only the target, not the source registry.
    source_url = index_url(package_server, owner.org, owner.registry, token["token"])
    refused = fresh_venv(tmp_path / "venv-source")
    assert_refused_with_401(pip_install(refused, "--index-url", source_url, NAME), refused)

    deleted = package_client.delete(
        f"{packages_path(owner.org, owner.registry)}/{source['id']}", headers=owner.auth()
    )
    assert deleted.status_code == 200, deleted.text
    sha256 = source["digests"]["sha256"]
    assert not package_file(package_server, sha256, source["id"]).exists()
    assert package_file(package_server, sha256, copy["id"]).exists()

    again = fresh_venv(tmp_path / "venv-after-delete")
    assert_installed(pip_install(again, "--index-url", url, NAME), again, value)


def _race(
    server: ServerProcess, tenant: Tenant, sources: list[str], slug: str, delays: list[float]
) -> list[str]:
    """Copies every source package into registry ``slug`` while it is deleted: what each
    copy answered."""

    def copying(source: str) -> Attempt:
        path = copy_path(tenant.org, tenant.registry, source, slug)
        return lambda client, secret: client.post(path, headers=bearer(secret))

    return race_registry_deletion(server, tenant, slug, [copying(s) for s in sources], delays)


def test_copies_racing_their_target_registrys_deletion_leave_no_file(tmp_path: Path) -> None:
    storage = tmp_path / "packages"
    rng = random.Random(12)
    with running_server(
        tmp_path, env={"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(storage)}
    ) as server:
        seeder = Seeder(server)
        tenant = admin_tenant(seeder)
        seeder.services.database.dispose()
        sources: list[str] = []
        with server.client(timeout=60) as client:
            for number in range(COPIERS):
                wheel = build_wheel(tmp_path, f"copied{number}", "1.0")
                sources.append(
                    published(client, tenant.org, tenant.registry, tenant.tokens["rw"], wheel)["id"]
                )
        kept = set(stored(server))
        assert len(kept) == COPIERS
        answers: list[str] = []
        for round_number in range(ROUNDS):
            with server.client() as client:
                created = client.post(
                    registries_path(tenant.org),
                    headers=tenant.auth(),
                    json={"name": f"Doomed {round_number}", "ecosystem": "python"},
                )
                assert created.status_code == 200, created.text
            delays = [rng.random() * 0.1 for _ in range(COPIERS + 1)]
            answers.extend(_race(server, tenant, sources, created.json()["slug"], delays))
        assert {answer.split(" ", 1)[0] for answer in answers} <= {"200", "404"}, answers
        for answer in answers:
            if answer.startswith("404"):
                assert answer == "404 No registry found"
        # Every target is gone with the copies' files; only the sources' files remain, and
        # nothing is left staged.
        assert set(stored(server)) == kept
