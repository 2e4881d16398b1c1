"""Downloads of tokens without quotas, counted off the request path.

A token with a quota is counted in the database before its file is sent (that is what
makes the quota exact: ``usage.UsageRepository.count``). A token without one has nothing
to enforce, so its download only adds to its usage: that addition waits here, summed by
token, period, hour and client address, and one background thread writes what has
gathered every ``flush_seconds`` in one transaction. Such a download costs a dictionary
update, not a database write.

What may be lost: the counts gathered since the last write when the process dies
uncleanly (SIGKILL, a crash): at most ``flush_seconds`` of the usage of tokens without
quotas, never a quota's count. A graceful shutdown (the app's lifespan,
:meth:`UsageBuffer.close`) writes them. A write the database refuses (an outage, a full
disk) is logged and tried again at the next interval; while it fails, what gathers is
bounded by ``max_keys`` (past it, new counts are dropped and counted in ``dropped``). A
connection lost during the commit itself leaves the write's outcome unknown: that batch
is dropped (counted in ``dropped``), so a download is counted at most once.
"""

import logging
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from registry_tokens.db import Database
from registry_tokens.db.failures import CommitOutcomeUnknown
from registry_tokens.registry_tokens.usage import Download, UsageRepository

logger = logging.getLogger("registry_tokens")

Key = tuple[uuid.UUID, datetime, datetime, str]  # token, period, hour, address


class UsageBuffer:
    """Usage waiting to be written, and the thread that writes it."""

    def __init__(self, database: Database, flush_seconds: float, max_keys: int = 50_000) -> None:
        self.database = database
        self.flush_seconds = flush_seconds
        self.max_keys = max_keys
        self.dropped = 0  # downloads not counted: gathered past max_keys while writes failed
        self._pending: dict[Key, list[int]] = {}
        self._changed = threading.Condition()  # guards _pending, _thread, _closing
        self._writing = threading.Lock()  # held while a batch is taken and written
        self._thread: threading.Thread | None = None
        self._closing = False

    def add(self, download: Download) -> None:
        """Counts a download already served: no I/O, never waits for the writer."""
        key = (download.token_id, download.key, download.hour, download.address)
        with self._changed:
            counts = self._pending.get(key)
            if counts is None:
                if len(self._pending) >= self.max_keys:
                    self._drop(download.downloads)
                    return
                self._pending[key] = [download.downloads, download.bytes]
                if len(self._pending) >= self.max_keys // 2:
                    self._changed.notify()  # write early rather than fill up
            else:
                counts[0] += download.downloads
                counts[1] += download.bytes
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, name="usage", daemon=True)
                self._thread.start()

    @property
    def pending(self) -> int:
        with self._changed:
            return sum(counts[0] for counts in self._pending.values())

    def flush(self) -> None:
        """Writes everything gathered so far (waiting for a write in progress); raises
        what the database raised, with the counts kept for the next try."""
        with self._writing:
            with self._changed:
                taken, self._pending = self._pending, {}
            if not taken:
                return
            try:
                with self.database.writing() as session:
                    UsageRepository(session, self.database.is_sqlite).count_all(_downloads(taken))
            except CommitOutcomeUnknown:
                # Written or not, no one can tell: counted at most once, never twice.
                with self._changed:
                    self._drop(sum(counts[0] for counts in taken.values()))
                raise
            except BaseException:
                self._put_back(taken)
                raise

    def close(self) -> None:
        """Stops the thread after it has written everything gathered (graceful shutdown)."""
        with self._changed:
            self._closing = True
            thread = self._thread
            self._changed.notify_all()
        if thread is not None:
            thread.join()
        try:
            self.flush()  # anything gathered after the thread stopped
        except (SQLAlchemyError, OSError, CommitOutcomeUnknown) as error:
            logger.warning("Token usage could not be written at shutdown: %s", error)
        with self._changed:
            self._thread = None
            self._closing = False

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._closing:
                    self._changed.wait(self.flush_seconds)  # close() or a full buffer wakes it
                closing = self._closing
            try:
                self.flush()
            except (SQLAlchemyError, OSError, CommitOutcomeUnknown) as error:
                logger.warning("Token usage cannot be written now (%s); trying again", error)
            except Exception:  # the thread must outlive any one batch
                logger.exception("Token usage could not be written")
            if closing:
                return

    def _put_back(self, taken: dict[Key, list[int]]) -> None:
        with self._changed:
            for key, (downloads, size) in taken.items():
                counts = self._pending.get(key)
                if counts is not None:
                    counts[0] += downloads
                    counts[1] += size
                elif len(self._pending) < self.max_keys:
                    self._pending[key] = [downloads, size]
                else:
                    self._drop(downloads)

    def _drop(self, downloads: int) -> None:
        """Called with ``_changed`` held."""
        self.dropped += downloads
        if self.dropped == downloads or self.dropped % 1000 < downloads:
            logger.warning(
                "Token usage is gathering faster than it can be written; %d downloads "
                "not counted so far",
                self.dropped,
            )


def _downloads(taken: dict[Key, list[int]]) -> Iterable[Download]:
    for (token_id, key, hour, address), (downloads, size) in taken.items():
        yield Download(token_id, key, hour, address, downloads, size)
