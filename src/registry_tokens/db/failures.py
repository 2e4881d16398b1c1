"""What a failure of the database or the disk means: the one place it is told apart.

Three kinds matter to a client, because each asks for a different answer:

- **lost connection** (:func:`is_disconnect`): an established connection died (the server
  restarted, or dropped idle sessions). A read can simply run again on a new connection;
  a write cannot, since it may have committed before the answer was lost.
- **unavailable** (:func:`is_unavailable`): the database cannot be reached, or is shutting
  down or starting up. Nothing was done; the client should retry later (503).
- **storage full** (:func:`is_storage_full`): a disk (the package directory, SQLite's file,
  PostgreSQL's data directory) has no room. Nothing was stored; reads still work (507).

And one that a service turns into its own answer: a **foreign key violation**
(:func:`is_foreign_key_violation`), a row added under one that a concurrent transaction
has just deleted.
"""

import errno
import sqlite3

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from registry_tokens.kit.errors import AppError

# ENOSPC: no space left; EFBIG: past the file size limit; EDQUOT: over a disk quota.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_SQLITE_FULL = sqlite3.SQLITE_FULL
# PostgreSQL: class 08 (connection exception), admin/crash shutdown, cannot connect now
# (starting up or shutting down); 53100 disk full.
_PG_UNAVAILABLE = ("08", "57P01", "57P02", "57P03")
_PG_DISK_FULL = "53100"
_PG_FOREIGN_KEY_VIOLATION = "23503"


class CommitOutcomeUnknown(AppError):
    """The connection was lost during the commit itself: the change may have been made.
    Said as it is, without ``Retry-After``: retrying blindly could make it twice."""

    def __init__(self) -> None:
        super().__init__(
            "The database connection was lost while committing: the change may or may not "
            "have been made; check before retrying",
            503,
        )


def _driver_error(error: BaseException) -> BaseException:
    return error.orig if isinstance(error, DBAPIError) and error.orig is not None else error


def is_disconnect(error: BaseException) -> bool:
    """An established connection was lost (SQLAlchemy's own test of the driver's error)."""
    return isinstance(error, DBAPIError) and error.connection_invalidated


def is_unavailable(error: BaseException) -> bool:
    """The database cannot serve now: unreachable, lost, shutting down or starting up."""
    if is_disconnect(error):
        return True
    if not isinstance(error, OperationalError):
        return False
    orig = _driver_error(error)
    if isinstance(orig, sqlite3.Error):
        return False  # SQLite's file is local: its errors are busy, full or real faults
    sqlstate = getattr(orig, "sqlstate", None)
    # No SQLSTATE: the driver itself failed to connect or lost the connection.
    return sqlstate is None or str(sqlstate).startswith(_PG_UNAVAILABLE)


def is_storage_full(error: BaseException) -> bool:
    """A write failed for want of room, on our disk or the database's."""
    orig = _driver_error(error)
    if isinstance(orig, OSError):
        return orig.errno in _FULL_ERRNOS
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        return code is not None and code & 0xFF == _SQLITE_FULL
    return getattr(orig, "sqlstate", None) == _PG_DISK_FULL


def is_busy(error: BaseException) -> bool:
    """SQLite's write lock was not free within the busy timeout, or every pooled
    connection stayed in use for ``REGISTRY_TOKENS_DB_POOL_TIMEOUT_SECONDS``."""
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, OperationalError):
        return False
    message = str(_driver_error(error))
    return "locked" in message or "busy" in message


def is_foreign_key_violation(error: BaseException) -> bool:
    """A row refers to one that is gone (e.g. deleted by a concurrent transaction)."""
    if not isinstance(error, IntegrityError):
        return False
    orig = _driver_error(error)
    if isinstance(orig, sqlite3.Error):
        return "FOREIGN KEY constraint failed" in str(orig)
    return getattr(orig, "sqlstate", None) == _PG_FOREIGN_KEY_VIOLATION
