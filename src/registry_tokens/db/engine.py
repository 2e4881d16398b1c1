"""Engines and sessions for SQLite (embedded default) and PostgreSQL, and the one rule for
where database work runs.

Services open sessions through :class:`Database`: ``reading()`` for ORM queries,
``writing()`` for changes, and run the typed queries of :mod:`registry_tokens.db.queries`
with ``fetch()``. On SQLite a write transaction starts with ``BEGIN IMMEDIATE`` so that it
takes the write lock up front and waits (busy timeout) instead of failing on a lock upgrade.

**Where it runs.** Every door (REST handler, package protocol route, console page) hands
its service call to ``await database.read(fn, ...)`` when the call only reads, or
``await database.write(fn, ...)`` when it may write; no door decides anything else:

- ``write``: always in a worker thread (it may wait for a lock, a disk, the network);
- ``read``: in a worker thread on PostgreSQL (every query waits on the network); inline
  on the event loop on SQLite, where a read of the local file in WAL mode never waits for
  a writer and takes less time than the trip to a thread and back.

**Lost connections.** A read whose connection turns out to have been dropped (PostgreSQL
restarted, or ended idle sessions) runs once more, on a new connection: it changed
nothing. A write is never run again, since it may have committed before its connection
was lost; it fails, and the doors answer 503 (:mod:`registry_tokens.db.failures`), saying
so when the connection was lost during the commit itself, whose outcome is unknown. The
pool tests a connection before lending it to a write (``pool_pre_ping``), so a restart
costs no write; the typed reads, the hot path, skip that round trip and retry instead.
"""

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from registry_tokens.db.failures import CommitOutcomeUnknown, is_disconnect
from registry_tokens.db.queries import Query, R, ReaderConnections, fetch_in
from registry_tokens.kit.files import create_private_file, private_directory
from registry_tokens.settings import Settings

logger = logging.getLogger("registry_tokens")

_IMMEDIATE = "registry_tokens_begin_immediate"

P = ParamSpec("P")
T = TypeVar("T")


def create_database_engine(settings: Settings) -> Engine:
    if settings.is_sqlite:
        path = settings.sqlite_path
        if path is not None:
            _create_private_sqlite_file(path)
        engine = create_engine(
            settings.database_url,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
            # SQLite connections are cheap; one for each request thread, so that no
            # request waits for another to give one back.
            pool_size=settings.worker_threads,
            max_overflow=settings.worker_threads,
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    return create_engine(
        settings.database_url,
        # Without it an unreachable host would hold each request for the system's TCP
        # timeout (minutes); with it the request fails fast, with a 503.
        connect_args={"connect_timeout": settings.db_connect_timeout_seconds},
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
    )


def _create_private_sqlite_file(path: Path) -> None:
    """The database file, owner-only, before SQLite opens it: SQLite gives its ``-wal``
    and ``-shm`` files the database file's mode, so they are owner-only too."""
    private_directory(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(create_private_file(path))


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _read_again_if_disconnected(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs reading work; once more if a connection was lost under it (module docstring)."""
    try:
        return work(*args, **kwargs)
    except DBAPIError as error:
        if not is_disconnect(error):
            raise
        logger.warning("database connection lost during a read; reading again: %s", error.orig)
    return work(*args, **kwargs)


class Database:
    """The process's engine and its two kinds of session."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_database_engine(settings)
        self.is_sqlite = settings.is_sqlite
        self._readers = ReaderConnections(self.engine)
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            self.engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False
        )
        # SQLite has one writer at a time. Threads of this process take turns here, handed
        # over at once, rather than in SQLite's busy handler, which polls with sleeps of a
        # millisecond and more; other processes still wait for each other there. Reentrant,
        # so a nested write fails as SQLite would fail it (busy) instead of hanging.
        self._writer = threading.RLock() if self.is_sqlite else contextlib.nullcontext()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read_sessions() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on error.

        A connection lost before the commit is the usual error (503, retry); lost during
        the commit itself, the outcome is unknown, and :class:`CommitOutcomeUnknown` says so.
        """
        with self._writer, self._write_sessions() as session:
            transaction = session.begin()
            try:
                yield session
                session.flush()
            except BaseException:
                transaction.rollback()
                raise
            try:
                transaction.commit()
            except DBAPIError as error:
                if is_disconnect(error):
                    raise CommitOutcomeUnknown() from error
                raise

    async def read(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs work that only reads, where this backend's reads belong (module docstring)."""
        call = functools.partial(_read_again_if_disconnected, work, *args, **kwargs)
        if self.is_sqlite:
            return call()
        return await anyio.to_thread.run_sync(call)

    @staticmethod
    async def write(work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs work that may write, in a worker thread (module docstring)."""
        return await anyio.to_thread.run_sync(functools.partial(work, *args, **kwargs))

    def fetch(self, query: Query[R], **values: Any) -> list[R]:
        """Runs a query in a transaction of its own: all its rows."""
        return self._readers.fetch(query, values)

    @staticmethod
    def fetch_in(session: Session, query: Query[R], **values: Any) -> list[R]:
        """Runs a query inside the session's (write) transaction."""
        return fetch_in(session, query, values)

    def ask(self, query: Query[R], session: Session | None, **values: Any) -> list[R]:
        """:meth:`fetch_in` the session when there is one, else :meth:`fetch`: for lookups
        that both reads and writes make (e.g. "the registry this caller may see")."""
        if session is not None:
            return fetch_in(session, query, values)
        return self._readers.fetch(query, values)

    @property
    def sqlite_path(self) -> Path | None:
        return self.settings.sqlite_path

    def dispose(self) -> None:
        self._readers.close()
        self.engine.dispose()
