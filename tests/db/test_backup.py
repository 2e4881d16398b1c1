"""``registry_tokens.db.backup`` on SQLite files of its own: a copy as of one commit while
another connection writes, failures that leave nothing behind, and the ``pg_dump`` line.
The command itself, as an operator runs it, is tested in ``tests/e2e/test_backup.py``."""

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry_tokens.db import Database, migrate
from registry_tokens.db.backup import (
    BackupError,
    UseAnotherTool,
    backup,
    backup_sqlite,
    head_revision,
    pg_dump_command,
)
from registry_tokens.settings import Settings
from tests.harness import BACKEND

SQLITE_ONLY = pytest.mark.skipif(
    BACKEND != "sqlite", reason="SQLite files of their own: the same on every backend run"
)


@pytest.fixture
def busy_file(tmp_path: Path) -> Iterator[Path]:
    """A WAL database into which a thread commits all along: each transaction adds a row
    to ``item`` and counts it in ``tally``, so a consistent copy has as many as it counts."""
    path = tmp_path / "busy.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, payload BLOB)")
    setup.execute("CREATE TABLE tally (n INTEGER)")
    setup.execute("INSERT INTO tally VALUES (0)")
    setup.commit()
    setup.close()
    stop = threading.Event()
    commits = [0]

    def write() -> None:
        connection = sqlite3.connect(path, timeout=10, isolation_level=None)
        while not stop.is_set():
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO item (payload) VALUES (randomblob(2000))")
            connection.execute("UPDATE tally SET n = n + 1")
            connection.execute("COMMIT")
            commits[0] += 1
        connection.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    while commits[0] < 2000:  # a database of some megabytes, so the copy takes a while
        threading.Event().wait(0.01)
    try:
        yield path
    finally:
        stop.set()
        writer.join(timeout=30)


@SQLITE_ONLY
def test_a_copy_under_writes_is_the_database_as_of_one_commit(
    busy_file: Path, tmp_path: Path
) -> None:
    for number in range(3):
        target = tmp_path / f"copy-{number}.db"
        made = backup_sqlite(busy_file, target)
        assert made.size_bytes == target.stat().st_size
        assert made.revision is None  # not one of ours: never migrated
        copy = sqlite3.connect(target)
        try:
            assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
            (items,) = copy.execute("SELECT count(*) FROM item").fetchone()
            (tally,) = copy.execute("SELECT n FROM tally").fetchone()
        finally:
            copy.close()
        assert items == tally >= 2000
    assert sorted(path.name for path in tmp_path.iterdir() if "copy" in path.name) == [
        "copy-0.db",
        "copy-1.db",
        "copy-2.db",
    ]  # nothing else beside them: no temporary file, no -wal


@SQLITE_ONLY
def test_a_migrated_database_names_its_revision(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'rt.db'}", secret_key="k")
    database = Database(settings)
    migrate.upgrade(database)
    database.dispose()
    made = backup(settings, tmp_path / "backup.db")
    assert made.revision == made.head_revision == head_revision()
    assert made.is_current


@SQLITE_ONLY
def test_a_file_that_is_not_a_database_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "not-a-database.db"
    source.write_bytes(b"this is not SQLite" * 512)
    backups = tmp_path / "backups"
    backups.mkdir()
    with pytest.raises(BackupError, match="the backup failed: file is not a database"):
        backup_sqlite(source, backups / "backup.db")
    assert list(backups.iterdir()) == []


@SQLITE_ONLY
def test_an_in_memory_database_has_nothing_to_back_up(tmp_path: Path) -> None:
    settings = Settings(database_url="sqlite://", secret_key="k")
    with pytest.raises(BackupError, match="in memory"):
        backup(settings, tmp_path / "backup.db")
    assert list(tmp_path.iterdir()) == []


def test_postgresql_is_refused_with_the_pg_dump_command(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql+psycopg://registry:pw@db.internal:5432/registry_tokens",
        secret_key="k",
    )
    with pytest.raises(UseAnotherTool) as refusal:
        backup(settings, tmp_path / "backup.dump")
    assert refusal.value.command == (
        f"pg_dump --format=custom --file {tmp_path / 'backup.dump'} "
        "'postgresql://registry@db.internal:5432/registry_tokens'"
    )
    assert "pg_dump" in refusal.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "command"),
    [
        (
            "postgresql+psycopg://u:p%40ss@h:5432/d",
            "pg_dump --format=custom --file out.dump 'postgresql://u@h:5432/d'",
        ),
        (
            "postgresql://u@[::1]/d?sslmode=verify-full",
            "pg_dump --format=custom --file out.dump 'postgresql://u@[::1]/d?sslmode=verify-full'",
        ),
        (  # a Unix socket, as libpq's host parameter (libpq decodes %2F)
            "postgresql+psycopg:///d?host=/var/run/postgresql",
            "pg_dump --format=custom --file out.dump "
            "'postgresql:///d?host=%2Fvar%2Frun%2Fpostgresql'",
        ),
    ],
)
def test_the_pg_dump_line_has_libpq_s_url_without_the_password(url: str, command: str) -> None:
    assert pg_dump_command(url, Path("out.dump")) == command
