"""What the server writes to disk is its owner's alone, like ``secret_key``: the SQLite
database with its ``-wal`` and ``-shm``, the package files (0600) and every directory it
makes for them (0700), whatever the umask lets through."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distributions import build_wheel
from tests.harness import BACKEND, Seeder, running_server, scratch_database
from tests.package_helpers import admin_tenant, published


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual umask (group and others may read): what the server must not rely on."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("permissive_umask")
def test_the_database_and_package_files_are_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "var"  # made by the server, as the embedded default's ./var is
    storage = home / "packages"
    database = home / "registry-tokens.db"
    env = {"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(storage)}
    with scratch_database(tmp_path / "scratch") as scratch_url:
        url = f"sqlite:///{database}" if BACKEND == "sqlite" else scratch_url
        with running_server(tmp_path, url, env=env) as server:
            seeder = Seeder(server)
            tenant = admin_tenant(seeder)
            seeder.services.database.dispose()
            with server.client() as client:
                package = published(
                    client,
                    tenant.org,
                    tenant.registry,
                    tenant.tokens["rw"],
                    build_wheel(tmp_path, "private-pkg", "1.0"),
                )
            sha256 = package["digests"]["sha256"]
            file = storage / "sha256" / sha256[:2] / sha256 / package["id"]
            assert file.is_file()
            modes = {str(path.relative_to(tmp_path)): mode(path) for path in [file]}
            directories = [storage, storage / "tmp", *list(file.parents)[:3]]
            if BACKEND == "sqlite":
                directories.append(home)
                wal, shm = (database.with_name(database.name + end) for end in ("-wal", "-shm"))
                assert wal.exists()  # WAL mode, while the server runs
                assert shm.exists()
                modes.update({str(p.relative_to(tmp_path)): mode(p) for p in (database, wal, shm)})
            expected = {name: 0o600 for name in modes}
            expected.update({str(d.relative_to(tmp_path)): 0o700 for d in directories})
            modes.update({str(d.relative_to(tmp_path)): mode(d) for d in directories})
            assert {name: oct(value) for name, value in modes.items()} == {
                name: oct(value) for name, value in expected.items()
            }
