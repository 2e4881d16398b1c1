"""Core statements compiled once and run on a driver connection: the hot paths' SQL.

Each request on the install path and each API request's authentication runs one or two
small indexed SELECTs. Through an ORM ``Session`` such a SELECT costs about 330 µs here
(session set-up, compiled-cache lookup, ORM loading, rollback on close); the same SELECT
in the driver costs about 10 µs (bench/RESULTS.md, "Analysis"). A :class:`PreparedQuery`
keeps what SQLAlchemy is good at, backend-neutral SQL built from the models and its type
conversions (UUIDs, UTC datetimes, JSON), and does the per-statement work once: the
statement is compiled for the dialect when the query is defined, and each run only binds
parameters, executes on the driver's cursor and converts the row values.

Every run reads the database: nothing here caches an answer, so a deleted, expired or
rotated-out credential is refused from the commit that changed it, on every process.
"""

import contextlib
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias, cast

from sqlalchemy import CompoundSelect, Engine, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

Row = tuple[Any, ...]
# Any SELECT, whatever its columns (SQLAlchemy 2.1 types a statement by its columns).
AnySelect: TypeAlias = Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]]
_Processor = Callable[[Any], Any] | None


class PreparedQuery:
    """A SELECT compiled once for one dialect; run with :meth:`Database.fetch`."""

    def __init__(self, statement: AnySelect, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        binds = compiled.binds
        # Positional drivers (sqlite3) take a tuple in the order the names appear in the
        # SQL; named ones (psycopg) take a mapping.
        self._names: Sequence[str] = (
            list(compiled.positiontup or []) if dialect.positional else list(binds)
        )
        self._positional = dialect.positional
        self._defaults = {name: bind.value for name, bind in binds.items() if not bind.required}
        self._bind_processors: dict[str, _Processor] = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in binds.items()
        }
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ]
        # Only the columns that need converting (UUIDs, datetimes, JSON on SQLite); a
        # processor takes None to None.
        self._result_processors = [
            (index, processor) for index, processor in enumerate(processors) if processor
        ]

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        def bound(name: str) -> Any:
            value = values[name] if name in values else self._defaults[name]
            processor = self._bind_processors[name]
            return processor(value) if processor is not None and value is not None else value

        if self._positional:
            return tuple(bound(name) for name in self._names)
        return {name: bound(name) for name in self._names}

    def convert(self, row: Sequence[Any]) -> Row:
        if not self._result_processors:
            return tuple(row)
        values = list(row)
        for index, processor in self._result_processors:
            values[index] = processor(values[index])
        return tuple(values)


class ReaderConnections:
    """One driver connection per thread, kept open, for prepared reads.

    Taking a connection from SQLAlchemy's pool and giving it back (with its reset) costs
    more than the read itself; a thread runs one request at a time, so it can keep one.
    The connections are taken from the engine (so its connect-time settings apply: WAL,
    busy timeout, foreign keys), then detached from its pool. They run in autocommit mode:
    every SELECT is its own transaction and sees everything committed before it starts.
    A connection that fails is dropped; the thread's next read opens a new one. A thread
    that ends (AnyIO retires idle worker threads) has its connection closed, so a busy
    day does not leave a trail of open PostgreSQL connections.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()
        # Every open connection and what closes it: when its thread is gone, or on close().
        self._open: dict[int, weakref.finalize[Any, Any]] = {}
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            pooled = self.engine.raw_connection()
            pooled.detach()
            connection = cast(Any, pooled.dbapi_connection)
            if self.engine.dialect.name == "sqlite":
                connection.isolation_level = None
            else:
                connection.autocommit = True
            self._local.connection = connection
            closer = weakref.finalize(
                threading.current_thread(), self._discard, id(connection), connection
            )
            with self._lock:
                self._open[id(connection)] = closer
        return connection

    def _discard(self, key: int, connection: Any) -> None:
        with self._lock:
            self._open.pop(key, None)
        with contextlib.suppress(Exception):
            connection.close()

    def close(self) -> None:
        """Closes every thread's connection (a thread's next read opens a new one)."""
        self._local = threading.local()
        with self._lock:
            closers = list(self._open.values())
        for closer in closers:
            closer()  # runs _discard once; a finalizer never runs twice

    def fetch(self, query: PreparedQuery, values: dict[str, Any]) -> list[Row]:
        parameters = query.parameters(values)
        connection = self._connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(query.sql, parameters)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        except self.engine.dialect.loaded_dbapi.Error as error:
            self._local.connection = None
            with self._lock:
                closer = self._open.get(id(connection))
            if closer is not None:
                closer()
            # As SQLAlchemy would raise it, so the usual handlers apply (503 when busy).
            raise DBAPIError.instance(
                query.sql, parameters, error, self.engine.dialect.loaded_dbapi.Error
            ) from error
        return [query.convert(row) for row in rows]
