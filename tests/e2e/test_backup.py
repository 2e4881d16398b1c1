"""``registry-tokens db backup`` and the README's restore procedure, end to end.

A backup is taken by the real command while eight clients create registry tokens through
a real server; the README's "Restoring SQLite" block is then run as written, and a new
server on the restored database must know every token acknowledged before the backup
began, and install with each one.
"""

import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from sqlalchemy.engine import make_url

from registry_tokens.db.backup import head_revision
from registry_tokens.settings import Settings
from tests.distributions import build_wheel
from tests.e2e.test_full_disk import small_disk
from tests.e2e.test_pip_install import (
    NAME,
    VERSION,
    assert_installed,
    fresh_venv,
    index_url,
    pip_install,
)
from tests.harness import (
    BACKEND,
    Seeder,
    ServerProcess,
    Tenant,
    free_port,
    running_server,
    scratch_database,
    server_env,
)
from tests.package_helpers import (
    admin_tenant,
    basic,
    create_registry_token,
    published,
    simple_path,
    tokens_path,
)

README = Path(__file__).resolve().parents[2] / "README.md"
WRITERS = 8
SQLITE_ONLY = pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="`db backup` copies SQLite databases; PostgreSQL is backed up with pg_dump "
    "(the test_on_postgresql_ tests)",
)


# --------------------------------------------------------------------------- helpers


def cli(
    cwd: Path, env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``registry-tokens ARGS`` as an operator runs it, with ``env`` as its environment."""
    return subprocess.run(
        [sys.executable, "-m", "registry_tokens", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sqlite_env(home: Path, **extra: str) -> dict[str, str]:
    """An operator's environment for a SQLite database in ``home`` (key file beside it)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_TOKENS_")}
    return {
        **clean,
        "REGISTRY_TOKENS_DATABASE_URL": f"sqlite:///{home / 'registry-tokens.db'}",
        **extra,
    }


def integrity(path: Path) -> list[str]:
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute("PRAGMA integrity_check")]
    finally:
        connection.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@dataclass
class KeyFileServer(ServerProcess):
    """A server on the embedded default's key: no ``REGISTRY_TOKENS_SECRET_KEY``, so the
    key is the ``secret_key`` file beside the database, which a restore must put back."""

    def settings(self) -> Settings:
        return Settings(
            database_url=self.database_url,
            api_url=self.base_url,
            web_url=self.env["REGISTRY_TOKENS_WEB_URL"],
            package_storage_dir=Path(self.env["REGISTRY_TOKENS_PACKAGE_STORAGE_DIR"]),
        )


@dataclass(frozen=True)
class Ack:
    """A token the server acknowledged (its create answered 200), and when."""

    at: float  # time.monotonic() once the answer was read
    id: str
    secret: str


@dataclass
class Writers:
    """Clients creating registry tokens, each as fast as the server answers."""

    base_url: str
    tenant: Tenant
    acks: list[Ack] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, count: int) -> None:
        for number in range(count):
            thread = threading.Thread(target=self._write, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _write(self, number: int) -> None:
        path = tokens_path(self.tenant.org, self.tenant.registry)
        with httpx.Client(base_url=self.base_url, timeout=60) as client:
            attempt = 0
            while not self._stop.is_set():
                attempt += 1
                try:
                    response = client.post(
                        path,
                        headers=self.tenant.auth(),
                        json={"description": f"writer {number} #{attempt}"},
                    )
                except httpx.HTTPError as error:
                    with self._lock:
                        self.problems.append(f"writer {number}: {error!r}")
                    return
                now = time.monotonic()
                with self._lock:
                    if response.status_code == 200:
                        body = response.json()
                        self.acks.append(Ack(now, body["id"], body["token"]))
                    else:
                        self.problems.append(f"{response.status_code} {response.text}")

    def wait_for(self, count: int, *, after: float = 0.0, timeout: float = 120) -> None:
        """Until ``count`` acknowledgements have arrived since ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if sum(ack.at > after for ack in self.acks) >= count or self.problems:
                    return
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} tokens acknowledged in {timeout}s")

    def stop(self) -> list[Ack]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        return list(self.acks)


def readme_block(heading: str, values: dict[str, str]) -> str:
    """The README's shell block under ``heading``, its first lines' paths set to ``values``."""
    text = README.read_text()
    section = text[text.index(f"### {heading}") :]
    block = section[section.index("```sh\n") + len("```sh\n") :]
    block = block[: block.index("```")]
    for name, value in values.items():
        # A replacement function, so that the value is taken as it is (no \\ escapes).
        block, found = re.subn(
            rf"^{name}=\S+", _constant(f"{name}={value}"), block, count=1, flags=re.M
        )
        assert found, f"the README's block under {heading!r} sets no {name}"
    return block


def run_block(block: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A README block run by bash, stopping at the first failing command, with the
    ``registry-tokens`` of this test run first on the ``PATH``."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=cwd,
        env={**env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _constant(text: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: text


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[KeyFileServer, Path]]:
    """A server on a SQLite database in ``srv/var``, as the embedded default lays it out:
    the key file and the package directory beside the database."""
    home = tmp_path / "srv" / "var"
    base_url = f"http://127.0.0.1:{free_port()}"
    database_url = f"sqlite:///{home / 'registry-tokens.db'}"
    env = {
        **os.environ,
        **server_env(
            tmp_path / "srv",
            database_url,
            base_url,
            {"REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": str(home / "packages")},
        ),
    }
    del env["REGISTRY_TOKENS_SECRET_KEY"]
    server = KeyFileServer(base_url, env, tmp_path / "server.log", database_url)
    server.start()
    try:
        yield server, home
    finally:
        server.stop()


# --------------------------------------------------------------------------- the restore


@SQLITE_ONLY
def test_a_backup_taken_under_writes_restores_every_token_acknowledged_before_it(
    served: tuple[KeyFileServer, Path], tmp_path: Path
) -> None:
    server, home = served
    database = home / "registry-tokens.db"
    seeder = Seeder(server)
    tenant = admin_tenant(seeder)
    seeder.services.database.dispose()
    (tmp_path / "dist").mkdir()
    wheel = build_wheel(tmp_path / "dist", NAME, VERSION, value="restored")
    with server.client() as client:
        published(client, tenant.org, tenant.registry, tenant.tokens["rw"], wheel)

    writers = Writers(server.base_url, tenant)
    writers.start(WRITERS)
    try:
        writers.wait_for(200)
        backups = tmp_path / "backups"
        backups.mkdir()
        backup = backups / "registry-tokens.db"
        copies = {
            "BACKUP": str(backup),
            "KEY_BACKUP": str(backups / "secret_key"),
            "PACKAGES_BACKUP": str(backups / "packages"),
        }
        # The README's backup, as written: the database, then the key and the package files.
        block = readme_block(
            "Backing up SQLite",
            {**copies, "KEY": str(home / "secret_key"), "PACKAGES": str(home / "packages")},
        )
        began = time.monotonic()
        made = run_block(block, server.env, tmp_path)
        ended = time.monotonic()
        writers.wait_for(100, after=ended)
    finally:
        acks = writers.stop()
    assert made.returncode == 0, made.stdout + made.stderr
    assert writers.problems == []

    assert made.stdout.splitlines()[0] == (
        f"wrote {backup}: {backup.stat().st_size} bytes, "
        f"migration revision {head_revision()} (the newest)"
    )
    assert f"the secret key: {home / 'secret_key'} (" in made.stdout
    assert f"the package files: {home / 'packages'} (" in made.stdout
    assert mode(backup) == 0o600
    assert mode(backups / "secret_key") == 0o600
    assert integrity(backup) == ["ok"]
    assert sorted(path.name for path in backups.iterdir()) == [
        "packages",
        "registry-tokens.db",
        "secret_key",
    ]  # no temporary file left, no -wal: one self-contained file

    before = [ack for ack in acks if ack.at < began]
    during = [ack for ack in acks if began <= ack.at <= ended]
    after = [ack for ack in acks if ack.at > ended]
    assert len(before) >= 200
    assert during, "the writers were not served while the backup ran"
    assert len(after) >= 100

    # The README's restore, as written: 1. stop; a lost key and package directory, so
    # that steps 3 must bring them back; the old database stays, with its -wal if any.
    server.stop()
    (home / "secret_key").unlink()
    shutil.rmtree(home / "packages")
    block = readme_block(
        "Restoring SQLite",
        {**copies, "DATABASE": str(database), "PACKAGES": str(home / "packages")},
    )
    restored = run_block(block, server.env, tmp_path)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "database is up to date" in restored.stdout
    assert mode(database) == 0o600
    assert mode(home / "secret_key") == 0o600
    server.start()  # 5. start: a new process, on the restored database and key

    assert integrity(database) == ["ok"]
    with server.client() as client:
        present = _in_parallel(lambda ack: _token_status(client, tenant, ack), before)
        assert present == [200] * len(before)
        installs = _in_parallel(lambda ack: _index_status(client, tenant, ack), before)
        assert installs == [200] * len(before)
        for ack in random.Random(17).sample(before, 20):
            _assert_downloads(client, tenant, ack, wheel)
        # Written after the backup ended, so not in it: this is the backup, restored.
        assert _in_parallel(lambda ack: _token_status(client, tenant, ack), after) == [404] * len(
            after
        )
        assert _in_parallel(lambda ack: _index_status(client, tenant, ack), after[:20]) == [
            401
        ] * len(after[:20])

    python = fresh_venv(tmp_path / "venv")
    url = index_url(server, tenant.org, tenant.registry, before[0].secret)
    assert_installed(pip_install(python, "--index-url", url, NAME), python, "restored")


def _in_parallel(check: Callable[[Ack], int], acks: list[Ack]) -> list[int]:
    with ThreadPoolExecutor(WRITERS) as pool:
        return list(pool.map(check, acks))


def _token_status(client: httpx.Client, tenant: Tenant, ack: Ack) -> int:
    response = client.get(
        f"{tokens_path(tenant.org, tenant.registry)}/{ack.id}", headers=tenant.auth()
    )
    if response.status_code == 200:
        assert response.json()["id"] == ack.id
    return response.status_code


def _index_status(client: httpx.Client, tenant: Tenant, ack: Ack) -> int:
    return client.get(
        simple_path(tenant.org, tenant.registry), headers=basic(ack.secret)
    ).status_code


def _assert_downloads(client: httpx.Client, tenant: Tenant, ack: Ack, wheel: Path) -> None:
    """What pip does with the token: the project's page, then its file, byte for byte."""
    page_url = f"{simple_path(tenant.org, tenant.registry)}{NAME}/"
    page = client.get(page_url, headers=basic(ack.secret))
    assert page.status_code == 200, page.text
    link = re.search(r'href="([^"]+)"', page.text)
    assert link, page.text
    file_url = urljoin(f"{server_base(client)}{page_url}", link.group(1))
    download = client.get(file_url, headers=basic(ack.secret), follow_redirects=True)
    assert download.status_code == 200
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(wheel.read_bytes()).digest()


def server_base(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


# --------------------------------------------------------------------------- the command


@pytest.fixture
def operator(tmp_path: Path) -> dict[str, str]:
    """An operator's environment, on a migrated SQLite database in ``tmp_path/var``."""
    env = sqlite_env(tmp_path / "var")
    upgraded = cli(tmp_path, env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return env


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual umask (group and others may read): what the backup must not rely on."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@SQLITE_ONLY
@pytest.mark.usefixtures("permissive_umask")
def test_the_backup_is_owner_only_and_says_what_else_to_keep(
    tmp_path: Path, operator: dict[str, str]
) -> None:
    backup = tmp_path / "backup.db"
    made = cli(tmp_path, operator, "db", "backup", str(backup))
    assert made.returncode == 0, made.stderr
    assert mode(backup) == 0o600
    assert integrity(backup) == ["ok"]
    lines = made.stdout.splitlines()
    assert lines[0] == (
        f"wrote {backup}: {backup.stat().st_size} bytes, "
        f"migration revision {head_revision()} (the newest)"
    )
    assert f"the secret key: {tmp_path / 'var' / 'secret_key'} (" in made.stdout
    assert f"the package files: {tmp_path / 'var' / 'packages'} (" in made.stdout
    assert 'README, "Backups and restore"' in made.stdout
    assert made.stderr == ""


@SQLITE_ONLY
def test_an_existing_file_is_replaced_only_with_force(
    tmp_path: Path, operator: dict[str, str]
) -> None:
    backup = tmp_path / "backup.db"
    backup.write_bytes(b"yesterday's backup")
    backup.chmod(0o644)
    refused = cli(tmp_path, operator, "db", "backup", str(backup))
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"error: {backup} already exists; use --force to replace it"
    assert refused.stdout == ""
    assert backup.read_bytes() == b"yesterday's backup"
    assert sorted(tmp_path.iterdir()) == [backup, tmp_path / "var"]  # no temporary file left

    forced = cli(tmp_path, operator, "db", "backup", str(backup), "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["size_bytes"] == backup.stat().st_size
    assert integrity(backup) == ["ok"]
    assert mode(backup) == 0o600  # a new file, not the old one rewritten
    assert sorted(tmp_path.iterdir()) == [backup, tmp_path / "var"]


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("missing/backup.db", "error: the directory {tmp}/missing does not exist; create it first"),
        (".", "error: {tmp} is a directory; give the path of the file to write"),
        (
            "var/registry-tokens.db",
            "error: {tmp}/var/registry-tokens.db is the live database (or one of its files)",
        ),
        (
            "var/registry-tokens.db-wal",
            "error: {tmp}/var/registry-tokens.db-wal is the live database (or one of its files)",
        ),
        (
            "var/secret_key/backup.db",
            "error: {tmp}/var/secret_key is not a directory",
        ),
    ],
)
def test_refusals_are_clear_and_write_nothing(
    tmp_path: Path, operator: dict[str, str], target: str, error: str
) -> None:
    before = sorted(tmp_path.rglob("*"))
    refused = cli(tmp_path, operator, "db", "backup", str(tmp_path / target), "--force")
    assert refused.returncode == 1
    assert refused.stderr.strip() == error.format(tmp=tmp_path)
    assert "Traceback" not in refused.stderr
    assert sorted(tmp_path.rglob("*")) == before


@SQLITE_ONLY
def test_a_full_disk_leaves_no_half_written_backup(
    tmp_path: Path, operator: dict[str, str]
) -> None:
    with small_disk(tmp_path / "disk", size="64k") as disk:
        target = disk / "backup.db"
        refused = cli(tmp_path, operator, "db", "backup", str(target))
        assert refused.returncode == 1
        assert refused.stderr.strip() == "error: the backup failed: database or disk is full"
        assert list(disk.iterdir()) == []


@SQLITE_ONLY
def test_a_directory_it_cannot_write_in_is_a_clear_error(
    tmp_path: Path, operator: dict[str, str]
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        remounted = subprocess.run(
            ["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True, check=False
        )
        if remounted.returncode != 0:
            pytest.skip(f"cannot make the tmpfs read-only: {remounted.stderr.strip()}")
        refused = cli(tmp_path, operator, "db", "backup", str(disk / "backup.db"))
        assert refused.returncode == 1
        assert refused.stderr.strip() == f"error: cannot write in {disk}: Read-only file system"


@SQLITE_ONLY
def test_an_absent_database_is_not_created(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path / "nowhere")
    refused = cli(tmp_path, env, "db", "backup", str(tmp_path / "backup.db"))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: there is no database at {tmp_path / 'nowhere' / 'registry-tokens.db'} "
        "(REGISTRY_TOKENS_DATABASE_URL)"
    )
    assert sorted(tmp_path.iterdir()) == []


def test_on_postgresql_it_says_to_use_pg_dump(tmp_path: Path) -> None:
    """Whatever the backend under test: nothing is copied, and the command line given is
    pg_dump's for the configured database, without its password."""
    env = {
        **sqlite_env(tmp_path),
        "REGISTRY_TOKENS_DATABASE_URL": (
            "postgresql+psycopg://registry:hunter2-secret@db.internal:5433/registry_tokens"
            "?sslmode=require"
        ),
        "REGISTRY_TOKENS_SECRET_KEY": "the-key",
        "REGISTRY_TOKENS_PACKAGE_STORAGE_DIR": "/srv/packages",
    }
    target = tmp_path / "my backups" / "registry-tokens.dump"
    refused = cli(tmp_path, env, "db", "backup", str(target))
    assert refused.returncode == 2
    assert refused.stdout == ""
    command = (
        f"pg_dump --format=custom --file '{target}' "
        "'postgresql://registry@db.internal:5433/registry_tokens?sslmode=require'"
    )
    assert refused.stderr.splitlines()[0] == (
        "error: this command backs up SQLite only; back up PostgreSQL with its own tool, "
        f"pg_dump (the password from PGPASSWORD or ~/.pgpass): {command}"
    )
    assert "the secret key: the value of REGISTRY_TOKENS_SECRET_KEY (" in refused.stderr
    assert "the package files: /srv/packages (" in refused.stderr
    assert "hunter2" not in refused.stderr
    assert sorted(tmp_path.iterdir()) == []

    as_json = cli(tmp_path, env, "db", "backup", str(target), "--json")
    assert as_json.returncode == 2
    document = json.loads(as_json.stdout)
    assert document["pg_dump"] == command
    assert [item["what"] for item in document["also_keep"]] == ["secret key", "package files"]


@pytest.mark.skipif(
    BACKEND != "postgresql", reason="runs pg_dump and pg_restore on the test PostgreSQL"
)
def test_on_postgresql_the_pg_dump_it_gives_restores_with_pg_restore(tmp_path: Path) -> None:
    """The README's PostgreSQL way, end to end: the command line ``db backup`` prints is
    run as printed, the dump is restored into an empty database as the README says, and
    a server on it with the same key knows every token."""
    dump = tmp_path / "registry-tokens.dump"
    restore = "pg_restore --no-owner --exit-on-error --dbname"
    assert f"{restore} 'postgresql://" in README.read_text()
    with (
        scratch_database(tmp_path / "source") as source_url,
        scratch_database(tmp_path / "empty") as empty_url,
    ):
        with running_server(tmp_path / "before", source_url) as server:
            seeder = Seeder(server)
            tenant = admin_tenant(seeder)
            seeder.services.database.dispose()
            with server.client() as client:
                made = [
                    create_registry_token(client, tenant.org, tenant.registry, tenant.tokens["rw"])
                    for _ in range(20)
                ]
            refused = cli(tmp_path, server.env, "db", "backup", str(dump), "--json")
            assert refused.returncode == 2
            command = json.loads(refused.stdout)["pg_dump"]
            dumped = subprocess.run(
                ["sh", "-c", command], capture_output=True, text=True, timeout=120, check=False
            )
            assert dumped.returncode == 0, dumped.stderr
            key = server.env["REGISTRY_TOKENS_SECRET_KEY"]

        target = make_url(empty_url).set(drivername="postgresql")
        restored = subprocess.run(
            [*restore.split(), target.render_as_string(hide_password=False), str(dump)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert restored.returncode == 0, restored.stderr
        env = {"REGISTRY_TOKENS_SECRET_KEY": key}
        with running_server(tmp_path / "after", empty_url, env=env) as again:
            upgraded = cli(tmp_path, again.env, "db", "upgrade")
            assert upgraded.returncode == 0, upgraded.stderr
            with again.client() as client:
                for token in made:
                    path = f"{tokens_path(tenant.org, tenant.registry)}/{token['id']}"
                    assert client.get(path, headers=tenant.auth()).status_code == 200
                    index = simple_path(tenant.org, tenant.registry)
                    assert client.get(index, headers=basic(token["token"])).status_code == 200
