"""What ``serve`` does to the package files when it starts: nothing irreversible. Files no
package owns are moved to ``.quarantine/``, and none at all when the database owns fewer
than half of those on disk (the wrong database, an empty one)."""

import hashlib
import os
import time
import uuid
from pathlib import Path

from tests.distributions import build_wheel
from tests.harness import Seeder, running_server, scratch_database
from tests.package_helpers import admin_tenant, packages_path, published, stored_files

HOURS_AGO = time.time() - 2 * 3600


def plant(storage: Path, content: bytes, *, old: bool = True) -> Path:
    """A package file at its place in the layout, as a package of another database left it."""
    digest = hashlib.sha256(content).hexdigest()
    path = storage / "sha256" / digest[:2] / digest / str(uuid.uuid4())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if old:
        os.utime(path, (HOURS_AGO, HOURS_AGO))
    return path


def quarantined(storage: Path) -> dict[Path, bytes]:
    return stored_files(storage / ".quarantine")


def test_serve_against_an_empty_database_leaves_every_package_file(tmp_path: Path) -> None:
    storage = tmp_path / "real-storage"
    planted = [plant(storage, f"wheel {n}".encode()) for n in range(5)]
    staging = storage / "tmp" / "left-by-a-crash.part"
    staging.parent.mkdir(parents=True)
    staging.write_bytes(b"half an upload")
    os.utime(staging, (HOURS_AGO, HOURS_AGO))
    before = stored_files(storage)

    env = {"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(storage)}
    with running_server(tmp_path / "wrong-db", env=env) as server:
        assert stored_files(storage) == before
        assert all(path.exists() for path in planted)
        log = server.log_path.read_text()
    assert "holds 5 package files and the database owns only 0 of them" in log
    assert "removed" not in log


def test_serve_quarantines_what_no_package_owns_and_keeps_the_rest(tmp_path: Path) -> None:
    storage = tmp_path / "packages"
    # One key for the three starts, so the API token made in the first works in the second.
    env = {
        "REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(storage),
        "REGISTRY_TOKENS_SECRET_KEY": uuid.uuid4().hex * 2,
    }
    with scratch_database(tmp_path / "db") as database_url:
        with running_server(tmp_path / "first", database_url, env=env) as server:
            seeder = Seeder(server)
            tenant = admin_tenant(seeder)
            with server.client() as client:
                for version in ("1.0", "2.0"):
                    wheel = build_wheel(tmp_path, "kept-pkg", version)
                    published(client, tenant.org, tenant.registry, tenant.tokens["rw"], wheel)
            seeder.services.database.dispose()
        owned = stored_files(storage)
        assert len(owned) == 2
        orphan = plant(storage, b"a file whose row never committed")
        fresh = plant(storage, b"an upload in flight", old=False)

        with running_server(tmp_path / "second", database_url, env=env) as server:
            log = server.log_path.read_text()
            on_disk = stored_files(storage)
            assert {path: on_disk.get(path) for path in owned} == owned
            assert fresh in on_disk
            assert not orphan.exists()
            moved = quarantined(storage)
            ((moved_path, moved_bytes),) = moved.items()
            assert moved_bytes == b"a file whose row never committed"
            # .quarantine/<time>/sha256/aa/<digest>/<id>: where it was, under one folder
            relative = moved_path.relative_to(storage / ".quarantine")
            assert relative.parts[1:] == orphan.relative_to(storage).parts
            assert "moved 1 package files that no package owned" in log
            with server.client() as client:
                listed = client.get(
                    packages_path(tenant.org, tenant.registry), headers=tenant.auth()
                )
                assert len(listed.json()["items"]) == 2

        # The quarantine is never swept again: a third start leaves it as it was.
        with running_server(tmp_path / "third", database_url, env=env):
            assert quarantined(storage) == moved
            assert set(owned) <= set(stored_files(storage))
