"""``registry-tokens db backup PATH``: a consistent copy of the SQLite database, taken while
the service serves and writes; for PostgreSQL, the ``pg_dump`` command line to use instead.

**Consistent while serving.** The copy is made by SQLite's online backup API in a single
step (``pages=-1``): one read transaction, so the copy is the database as of one commit.
In WAL mode (the service's) a reader never blocks a writer, so requests go on being
served and written while it runs; commits made meanwhile are simply not in the copy. A
copy made in several steps would release its snapshot between them, and SQLite restarts
such a backup whenever another process writes in between: under steady writes it would
never end.

**Never a half-written PATH.** The copy is written to a temporary file beside PATH (so on
the same file system), checked (``PRAGMA quick_check``), switched out of WAL mode so that
it is one self-contained file, flushed to disk (``fsync``), and only then renamed to
PATH, and the directory flushed too. Without ``force`` the name is claimed with a hard
link, which fails if PATH appeared meanwhile, so an existing file is never replaced. The
file is readable by its owner only (``0600``): it holds every token's hash.

**Not in the copy.** The secret key, without which every stored hash is useless, and the
package files: :func:`also_keep` names them for the operator.
"""

import contextlib
import os
import shlex
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, make_url

from registry_tokens.db.migrate import alembic_config
from registry_tokens.kit.files import flush_to_disk
from registry_tokens.settings import SECRET_KEY_FILE_NAME, Settings


class BackupError(Exception):
    """A backup that was not made; the message says why, and how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UseAnotherTool(BackupError):
    """This database is not backed up by this command (PostgreSQL): the message says with
    what, as a command line; :attr:`command` is that command line alone."""

    def __init__(self, message: str, command: str) -> None:
        super().__init__(message)
        self.command = command


@dataclass(frozen=True)
class Backup:
    """A backup made: where, how big, and the schema revision it holds."""

    path: Path
    size_bytes: int
    revision: str | None
    head_revision: str

    @property
    def is_current(self) -> bool:
        return self.revision == self.head_revision


@dataclass(frozen=True)
class KeepAlso:
    """Something a restore needs that the database backup does not hold."""

    what: str
    where: str
    why: str


def also_keep(settings: Settings) -> list[KeepAlso]:
    """What else must be kept, besides the database, for a backup to be restorable."""
    if settings.secret_key is not None:
        key_where = "the value of REGISTRY_TOKENS_SECRET_KEY"
    elif settings.sqlite_path is not None:
        key_where = str((settings.sqlite_path.parent / SECRET_KEY_FILE_NAME).absolute())
    else:
        key_where = "REGISTRY_TOKENS_SECRET_KEY"
    return [
        KeepAlso(
            "secret key",
            key_where,
            "every token is stored as an HMAC under it: without it no stored token can be "
            "verified again",
        ),
        _package_files(settings),
    ]


def _package_files(settings: Settings) -> KeepAlso:
    if settings.package_storage_url:
        return KeepAlso(
            "package files",
            f"the bucket {settings.package_storage_url} (with the store's own tools: "
            "versioning, replication or a copy)",
            "the database holds only their names and digests",
        )
    return KeepAlso(
        "package files",
        str(settings.package_storage_path.absolute()),
        "the database holds only their names and digests",
    )


def backup(settings: Settings, target: Path, *, force: bool = False) -> Backup:
    """Copies the configured database to ``target`` (SQLite), or raises
    :class:`UseAnotherTool` (PostgreSQL) or :class:`BackupError` (nothing written)."""
    if not settings.is_sqlite:
        command = pg_dump_command(settings.database_url, target)
        raise UseAnotherTool(
            "this command backs up SQLite only; back up PostgreSQL with its own tool, "
            f"pg_dump (the password from PGPASSWORD or ~/.pgpass): {command}",
            command,
        )
    source = settings.sqlite_path
    if source is None:
        raise BackupError("the database is in memory: there is nothing on disk to back up")
    return backup_sqlite(
        source, target, force=force, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )


def pg_dump_command(database_url: str, target: Path) -> str:
    """A ``pg_dump`` command line for the database of ``database_url``, without its
    password (a command line is seen in the process list and kept in shell histories)."""
    url = make_url(database_url)
    without_password = URL.create(
        "postgresql",  # libpq's scheme: no SQLAlchemy driver name
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )
    libpq_url = without_password.render_as_string(hide_password=False)
    # Quoted even when the shell would not need it: a URL of ``?`` and ``&`` often does.
    quoted_url = "'" + libpq_url.replace("'", "'\"'\"'") + "'"
    return f"pg_dump --format=custom --file {shlex.quote(str(target))} {quoted_url}"


def backup_sqlite(
    source: Path, target: Path, *, force: bool = False, busy_timeout_ms: int = 10_000
) -> Backup:
    """The online backup of the SQLite file ``source`` into ``target`` (module docstring)."""
    _check_target(source, target, force=force)
    if not source.is_file():
        raise BackupError(f"there is no database at {source} (REGISTRY_TOKENS_DATABASE_URL)")
    try:
        fd, temporary_name = tempfile.mkstemp(  # mode 0600
            dir=target.parent, prefix=f".{target.name}.", suffix=".partial"
        )
    except OSError as error:
        raise BackupError(f"cannot write in {target.parent}: {error.strerror}") from None
    os.close(fd)
    temporary = Path(temporary_name)
    try:
        revision = _copy(source, temporary, busy_timeout_ms)
        flush_to_disk(temporary)
        _put_in_place(temporary, target, force=force)
    except BaseException as failure:
        for leftover in (temporary, Path(f"{temporary}-journal"), Path(f"{temporary}-wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        if isinstance(failure, OSError):
            raise BackupError(f"cannot write {target}: {failure.strerror}") from None
        raise
    flush_to_disk(target.parent)
    return Backup(target.absolute(), target.stat().st_size, revision, head_revision())


def head_revision() -> str:
    """The newest migration this version of the service knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _check_target(source: Path, target: Path, *, force: bool) -> None:
    directory = target.parent
    if not directory.exists():
        raise BackupError(f"the directory {directory} does not exist; create it first")
    if not directory.is_dir():
        raise BackupError(f"{directory} is not a directory")
    if target.is_dir():
        raise BackupError(f"{target} is a directory; give the path of the file to write")
    live = [source, Path(f"{source}-wal"), Path(f"{source}-shm"), Path(f"{source}-journal")]
    if any(_same_file(target, path) for path in live):
        raise BackupError(f"{target} is the live database (or one of its files)")
    if target.exists() and not force:
        raise BackupError(f"{target} already exists; use --force to replace it")


def _same_file(one: Path, other: Path) -> bool:
    try:
        return os.path.samefile(one, other)
    except FileNotFoundError:
        return one.absolute() == other.absolute()


def _copy(source: Path, temporary: Path, busy_timeout_ms: int) -> str | None:
    """Copies ``source`` into ``temporary`` in one step; checks the copy and makes it one
    file (rollback journal, not WAL). Returns the copy's migration revision."""
    timeout = busy_timeout_ms / 1000
    try:
        # mode=rw: an absent database is an error, never a new empty file.
        reader = sqlite3.connect(f"{source.absolute().as_uri()}?mode=rw", uri=True, timeout=timeout)
    except sqlite3.Error as error:
        raise BackupError(f"cannot open the database {source}: {error}") from None
    try:
        copy = sqlite3.connect(temporary, timeout=timeout)
        try:
            reader.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode=DELETE")
            problems = [row[0] for row in copy.execute("PRAGMA quick_check")]
            if problems != ["ok"]:
                raise BackupError(f"the copy fails SQLite's quick_check: {problems[:5]}")
            return _revision(copy)
        finally:
            copy.close()
    except sqlite3.Error as error:
        raise BackupError(f"the backup failed: {error}") from None
    finally:
        reader.close()


def _revision(connection: sqlite3.Connection) -> str | None:
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.OperationalError:  # never migrated
        return None
    return str(rows[0][0]) if rows else None


def _put_in_place(temporary: Path, target: Path, *, force: bool) -> None:
    if force:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails, atomically, if target exists by now
    except FileExistsError:
        raise BackupError(f"{target} already exists; use --force to replace it") from None
    except OSError:  # a file system without hard links: check, then rename
        if target.exists():
            raise BackupError(f"{target} already exists; use --force to replace it") from None
        os.replace(temporary, target)
        return
    temporary.unlink()
