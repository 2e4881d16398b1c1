"""Queries written once, with typed rows: the one place each read question is answered.

A :class:`Query` is a SQLAlchemy Core SELECT paired with the ``NamedTuple`` its rows are
read into, by column name: the statement's column labels must be the row type's fields, in
order, which is checked when the query is defined, so no caller ever reads a row by
position. Every door (the REST API, the package protocols, the CLI) asks the same
:class:`Query` through :meth:`Database.fetch` (its own short transaction, on a connection
the thread keeps) or, inside a write transaction, :meth:`Database.fetch_in`.

The statement is compiled once for the dialect; each :meth:`Database.fetch` only binds
parameters, runs the driver's cursor and converts values (UUIDs, UTC datetimes, JSON) with
SQLAlchemy's own type processors. Nothing here caches an answer: every fetch reads the
database, so a deleted, expired or rotated-out credential is refused from the commit that
changed it, on every process.
"""

import contextlib
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeAlias, TypeVar, cast

from sqlalchemy import CompoundSelect, Engine, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from registry_tokens.db.failures import is_disconnect

# Any SELECT, whatever its columns (SQLAlchemy 2.1 types a statement by its columns).
AnySelect: TypeAlias = Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]]
R = TypeVar("R", bound=NamedTuple)
_Processor = Callable[[Any], Any] | None


class Query(Generic[R]):
    """A SELECT and its row type; compiled for a dialect on first use by a database."""

    def __init__(self, statement: AnySelect, row: type[R]) -> None:
        labels = [column.key for column in statement.selected_columns]
        fields = list(row._fields)
        if labels != fields:
            raise TypeError(f"{row.__name__}: columns {labels} are not its fields {fields}")
        self.statement = statement
        self.row = row
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> "_Compiled":
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _Compiled(self.statement, dialect)
        return found

    def rows(self, values: Sequence[Sequence[Any]]) -> list[R]:
        make = cast(Callable[[Sequence[Any]], R], self.row._make)
        return [make(value) for value in values]


class _Compiled:
    """The statement as SQL text for one dialect, with its parameter and value converters."""

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
        # Only the columns that need converting; a processor takes None to None.
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

    def convert(self, row: Sequence[Any]) -> Sequence[Any]:
        if not self._result_processors:
            return row
        values = list(row)
        for index, processor in self._result_processors:
            values[index] = processor(values[index])
        return values


class ReaderConnections:
    """One driver connection per thread, kept open, for :meth:`Database.fetch`.

    Taking a connection from SQLAlchemy's pool and giving it back (with its reset) costs
    more than an indexed read; a thread runs one request at a time, so it can keep one.
    The connections are taken from the engine (so its connect-time settings apply: WAL,
    busy timeout, foreign keys), then detached from its pool. They run in autocommit mode:
    every SELECT is its own transaction and sees everything committed before it starts.
    A connection that fails is dropped; the thread's next read opens a new one, and a read
    that found its kept connection lost runs again at once on a new one. A thread
    that ends (AnyIO retires idle worker threads) has its connection closed.
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
            dbapi_error = self.engine.dialect.loaded_dbapi.Error
            try:
                pooled = self.engine.raw_connection()
            except dbapi_error as error:  # the pool raises the driver's own error
                raise DBAPIError.instance(None, None, error, dbapi_error) from error
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

    def fetch(self, query: Query[R], values: dict[str, Any]) -> list[R]:
        compiled = query.compiled(self.engine.dialect)
        parameters = compiled.parameters(values)
        kept = getattr(self._local, "connection", None) is not None
        try:
            return self._fetch_once(query, compiled, parameters)
        except DBAPIError as error:
            # A kept connection that the server has dropped since its last use (a restart,
            # idle sessions terminated): the SELECT, its own transaction, runs once more
            # on a new connection. A connection just opened is not tried again.
            if not (kept and is_disconnect(error)):
                raise
        return self._fetch_once(query, compiled, parameters)

    def _fetch_once(
        self, query: Query[R], compiled: _Compiled, parameters: tuple[Any, ...] | dict[str, Any]
    ) -> list[R]:
        connection = self._connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(compiled.sql, parameters)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        except self.engine.dialect.loaded_dbapi.Error as error:
            lost = self.engine.dialect.is_disconnect(error, connection, None)
            self._local.connection = None
            with self._lock:
                closer = self._open.get(id(connection))
            if closer is not None:
                closer()
            # As SQLAlchemy would raise it, so the usual handlers apply (503 when busy or
            # unreachable, a retry when the connection was lost).
            raise DBAPIError.instance(
                compiled.sql,
                parameters,
                error,
                self.engine.dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
            ) from error
        return query.rows([compiled.convert(row) for row in rows])


def fetch_in(session: Session, query: Query[R], values: dict[str, Any]) -> list[R]:
    """The query inside the session's transaction (it sees the transaction's own writes)."""
    return query.rows(list(session.execute(query.statement, values)))
