"""A full disk: writes answer 507 with Retry-After and store nothing, reads and installs go
on answering 200, and writes work again once there is room.

The disk is a real one: a small tmpfs mounted for the test (root only; CI runs as root),
holding the package directory and, on SQLite, the database; it is filled to the last
block with a file that the test removes to make room again.
"""

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from registry_tokens.protocols.pypi import SIMPLE_JSON
from tests.distributions import build_wheel
from tests.harness import BACKEND, Seeder, ServerProcess, Tenant, running_server, scratch_database
from tests.package_helpers import (
    admin_tenant,
    basic,
    bearer,
    create_registry_token,
    packages_path,
    publish,
    published,
    registry_path,
    simple_path,
    stored_files,
)


@contextmanager
def small_disk(where: Path, size: str = "16m") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Takes every free block of the disk (a write that finds none fails with ENOSPC);
    deleting the file gives them back."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        assert _write_until_it_fails(fd) == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _write_until_it_fails(fd: int) -> int | None:
    """Unbuffered writes: a short one takes the last blocks, the next one fails."""
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as error:
        return error.errno


@contextmanager
def server_on_small_disk(workdir: Path) -> Iterator[tuple[ServerProcess, Path]]:
    """A server whose package directory (and SQLite database) is on a small disk; every
    install writes its token's last use (interval 0), and rate limits count."""
    with small_disk(workdir / "disk") as disk:
        env = {
            "REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(disk / "packages"),
            "REGISTRY_TOKENS_USAGE_WRITE_INTERVAL_SECONDS": "0",
            "REGISTRY_TOKENS_RATE_LIMIT_PER_USER": "1000",
            "REGISTRY_TOKENS_RATE_LIMIT_PER_CLIENT": "1000",
        }
        if BACKEND == "sqlite":
            with running_server(workdir, f"sqlite:///{disk / 'registry-tokens.db'}", env=env) as s:
                yield s, disk
        else:
            with scratch_database(workdir) as url, running_server(workdir, url, env=env) as s:
                yield s, disk


def _reads(client: httpx.Client, tenant: Tenant, registry_token: str, file_url: str) -> list[str]:
    """Every read a client makes, REST and install: what each answered."""
    api = bearer(tenant.tokens["rw"])
    install = basic(registry_token)
    simple = simple_path(tenant.org, tenant.registry)
    answers = {
        "list tokens": client.get(tenant.tokens_path, headers=api),
        "get registry": client.get(registry_path(tenant.org, tenant.registry), headers=api),
        "list packages": client.get(packages_path(tenant.org, tenant.registry), headers=api),
        "index": client.get(simple, headers=install),
        "project": client.get(f"{simple}full-disk/", headers=install),
        "download": client.get(file_url, headers=install),
    }
    return [f"{name}: {response.status_code}" for name, response in answers.items()]


def test_a_full_disk_refuses_writes_with_507_and_keeps_every_read_working(
    tmp_path: Path,
) -> None:
    with server_on_small_disk(tmp_path) as (server, disk):
        seeder = Seeder(server)
        tenant = admin_tenant(seeder)
        seeder.services.database.dispose()
        secret = tenant.tokens["rw"]
        wheel = build_wheel(tmp_path, "full-disk", "1.0")
        late = build_wheel(tmp_path, "full-disk", "2.0", value="x" * 100_000)
        with server.client() as client:
            registry_token = create_registry_token(client, tenant.org, tenant.registry, secret)
            published(client, tenant.org, tenant.registry, secret, wheel)
            json_page = {**basic(registry_token["token"]), "Accept": SIMPLE_JSON}
            page = client.get(
                f"{simple_path(tenant.org, tenant.registry)}full-disk/", headers=json_page
            )
            # The index links files relative to the project page: ../../files/<id>/<name>
            relative = page.json()["files"][0]["url"].removeprefix("../../")
            file_url = f"/{tenant.org}/{tenant.registry}/pypi/{relative}"
            expected_reads = _reads(client, tenant, registry_token["token"], file_url)
            assert all(answer.endswith(": 200") for answer in expected_reads), expected_reads
            files_before = stored_files(disk / "packages")

            filler = fill(disk)
            for _ in range(3):
                assert _reads(client, tenant, registry_token["token"], file_url) == expected_reads
                refused = publish(client, tenant.org, tenant.registry, secret, late)
                assert refused.status_code == 507, refused.text
                assert refused.headers["Retry-After"].isdigit()
                assert "storage" in refused.json()["message"].lower()
                created = client.post(
                    tenant.tokens_path, headers=bearer(secret), json={"description": "full"}
                )
                if BACKEND == "sqlite":  # the database is on the full disk too
                    assert created.status_code == 507, created.text
                    assert created.headers["Retry-After"].isdigit()
                else:
                    assert created.status_code == 200, created.text
                assert _reads(client, tenant, registry_token["token"], file_url) == expected_reads
            # Nothing half-stored: no staged part, no new file, the listing unchanged.
            assert stored_files(disk / "packages") == files_before
            listed = client.get(packages_path(tenant.org, tenant.registry), headers=bearer(secret))
            assert [item["version"] for item in listed.json()["items"]] == ["1.0"]

            filler.unlink()  # room again: writes work, by themselves
            assert publish(client, tenant.org, tenant.registry, secret, late).status_code == 200
            assert (
                client.post(
                    tenant.tokens_path, headers=bearer(secret), json={"description": "room again"}
                ).status_code
                == 200
            )
        log = server.log_path.read_text()
        assert "500 Internal Server Error" not in log
        assert "Exception in ASGI" not in log
