"""Where request counts live: leases from the database by default, Redis when configured.

Every store answers one question per request and subject: which number is this request in
the subject's window (``current``)? A request is admitted when its number is at most the
subject's limit. ``None`` means the store could not tell (it is failing): the request is
allowed, never refused for it (fail open).

:class:`LeaseStore` (no Redis) writes the database only to *lease* a block of numbers
from the shared ``rate_limit_counters`` row, with one atomic upsert (``count = count + k``),
and hands them out from memory; see its docstring for the sizes and the guarantees.
:class:`RedisStore` counts every request in Redis. While Redis fails, :class:`FailoverStore`
counts with the lease store instead and tries Redis again after a pause.
"""

import asyncio
import logging
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio.to_thread
import redis
import redis.asyncio
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from registry_tokens.db import Database
from registry_tokens.ratelimits.models import RateLimitCounter
from registry_tokens.ratelimits.repository import SHARED_COUNT

logger = logging.getLogger("registry_tokens.ratelimits")

# A lease is this fraction of what the process last saw remaining of the limit, at most
# MAX_LEASE and at least 1: with fewer than 2 * LEASE_DIVISOR left, every request is
# counted in the shared row.
LEASE_DIVISOR = 8
MAX_LEASE = 1000
_LOCK_STRIPES = 64


@dataclass(frozen=True)
class Window:
    """A fixed window: ``start`` (a multiple of ``seconds``) and its length."""

    start: int
    seconds: int


@dataclass(frozen=True)
class Counted:
    """One subject of a request: its key in the store and its limit."""

    key: str
    limit: int


class CounterStore(Protocol):
    async def count(self, window: Window, subjects: Sequence[Counted]) -> list[int | None]:
        """This request's number in each subject's window, in order (``None``: unknown)."""
        ...

    async def peek(self, window: Window, key: str) -> int:
        """How many requests the key's window has counted so far, counting none."""
        ...


def lease_size(limit: int, seen: int) -> int:
    """How many numbers to lease when the shared row was last seen at ``seen``."""
    return max(1, min(MAX_LEASE, (limit - seen) // LEASE_DIVISOR))


@dataclass
class _Lease:
    """A process's numbers of one key in one window: ``next`` up to ``end`` are its own.

    ``end`` is the shared row's count when the last lease was taken. Once ``end`` reaches
    the limit no more are leased in this window: later requests are refused, numbered on
    from ``end`` in memory (so ``current`` goes on rising as it would in the row).
    """

    window_start: int
    next: int
    end: int

    def take(self, limit: int) -> int | None:
        """The next number, or ``None`` when a new lease is needed first."""
        if self.next > self.end and self.end < limit:
            return None
        number = self.next
        self.next += 1
        return number


class LeaseStore:
    """Numbers leased in blocks from the shared ``rate_limit_counters`` row.

    The row for (key, window) holds how many numbers every process together has leased.
    A process leases ``k`` numbers with one upsert that adds ``k`` and returns the new
    count ``T``: the numbers ``T-k+1 … T`` are its own, and it hands them out one per
    request with no I/O. ``k`` is an eighth of what the process last saw remaining, at
    most 1000, and 1 once fewer than 16 remain, so near the limit every request is
    counted in the row exactly.

    Each number is handed out once, so across all processes at most ``limit`` requests
    are admitted per key and window (no overshoot). The cost: numbers leased by one
    process and not used are not available to another, so a request may be refused while
    at most the sum of the other processes' unused leases — each at most
    ``min(1000, limit // 8)`` — is left unspent. One process alone counts exactly.

    When the database cannot be written, requests needing a lease are allowed (``None``),
    a warning is logged once per window, and the next request tries again.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self.dialect = postgresql if not database.settings.is_sqlite else sqlite
        self._leases: dict[str, _Lease] = {}
        self._state = threading.Lock()  # guards _leases; never held across I/O
        # One lease at a time per key and process (keys hash to a stripe): no process
        # leases twice for the same need.
        self._refills = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._window_start = 0
        self._last_sweep = 0
        self._failing_since_window: int | None = None

    async def count(self, window: Window, subjects: Sequence[Counted]) -> list[int | None]:
        numbers, missing = self._from_leases(window, subjects)
        if missing:
            leased = await anyio.to_thread.run_sync(self._lease, window, missing)
            _fill(numbers, missing, leased)
        return numbers

    async def peek(self, window: Window, key: str) -> int:
        """The shared row's count, less this process's numbers leased and not yet handed
        out, plus those it handed out past the row (refusals, numbered in memory): exact
        for one process, an upper bound with several (the others' unused leases are in
        the row). Reads the row; writes nothing."""
        rows = await self.database.read(
            self.database.fetch, SHARED_COUNT, key=key, window_start=window.start
        )
        shared = rows[0].leased if rows else 0
        with self._state:
            lease = self._leases.get(key)
            if lease is None or lease.window_start != window.start:
                return shared
            return max(0, shared + (lease.next - 1 - lease.end))

    def _from_leases(
        self, window: Window, subjects: Sequence[Counted]
    ) -> tuple[list[int | None], list[tuple[int, Counted]]]:
        """Numbers from the leases held (no I/O), and the subjects that need a lease."""
        numbers: list[int | None] = []
        missing: list[tuple[int, Counted]] = []
        with self._state:
            if window.start != self._window_start:
                self._window_start = window.start
                self._leases = {
                    key: lease
                    for key, lease in self._leases.items()
                    if lease.window_start >= window.start
                }
            for position, subject in enumerate(subjects):
                number = self._take(window, subject)
                numbers.append(number)
                if number is None:
                    missing.append((position, subject))
        return numbers, missing

    def _take(self, window: Window, subject: Counted) -> int | None:
        lease = self._leases.get(subject.key)
        if lease is None or lease.window_start != window.start:
            return None
        return lease.take(subject.limit)

    def _lease(self, window: Window, missing: Sequence[tuple[int, Counted]]) -> list[int | None]:
        """Numbers for subjects without one, leasing in one transaction (blocks)."""
        subjects = [subject for _, subject in missing]
        stripes = sorted({zlib.crc32(s.key.encode()) % _LOCK_STRIPES for s in subjects})
        for stripe in stripes:  # in order: no two threads wait for each other
            self._refills[stripe].acquire()
        try:
            numbers: list[int | None] = []
            wanted: list[tuple[int, Counted, int]] = []
            with self._state:  # another thread may have leased meanwhile
                for subject in subjects:
                    number = self._take(window, subject)
                    numbers.append(number)
                    if number is None:
                        lease = self._leases.get(subject.key)
                        seen = lease.end if lease and lease.window_start == window.start else 0
                        wanted.append((len(numbers) - 1, subject, lease_size(subject.limit, seen)))
            if not wanted:
                return numbers
            try:
                totals = self._write(window, [(s.key, size) for _, s, size in wanted])
            except (SQLAlchemyError, OSError) as error:
                self._failed(window, error)
                return numbers  # the failed ones stay None: allowed
            self._recovered()
            with self._state:
                for (position, subject, size), total in zip(wanted, totals, strict=True):
                    lease = _Lease(window.start, next=total - size + 1, end=total)
                    self._leases[subject.key] = lease
                    numbers[position] = lease.take(subject.limit)
            return numbers
        finally:
            for stripe in reversed(stripes):
                self._refills[stripe].release()

    def _write(self, window: Window, sizes: Sequence[tuple[str, int]]) -> list[int]:
        """Adds each size to its key's shared count; the new counts, in order."""
        totals = []
        with self.database.writing() as session:
            for key, size in sizes:
                insert = self.dialect.insert(RateLimitCounter).values(
                    key=key, window_start=window.start, count=size
                )
                statement = insert.on_conflict_do_update(
                    index_elements=["key", "window_start"],
                    set_={"count": RateLimitCounter.count + insert.excluded.count},
                ).returning(RateLimitCounter.count)
                totals.append(int(session.execute(statement).scalar_one()))
            if window.start != self._last_sweep:
                # Once per window and process: forget windows that can no longer matter.
                session.execute(
                    delete(RateLimitCounter).where(
                        RateLimitCounter.window_start < window.start - window.seconds
                    )
                )
        self._last_sweep = window.start
        return totals

    def _failed(self, window: Window, error: Exception) -> None:
        with self._state:
            first = self._failing_since_window != window.start
            self._failing_since_window = window.start
        if first:
            logger.warning(
                "Rate-limit counters cannot be written (%s: %s); requests are allowed "
                "uncounted until they can",
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )

    def _recovered(self) -> None:
        if self._failing_since_window is not None:
            with self._state:
                self._failing_since_window = None
            logger.info("Rate-limit counters can be written again")


def _fill(
    numbers: list[int | None], missing: Sequence[tuple[int, Counted]], leased: list[int | None]
) -> None:
    for (position, _), number in zip(missing, leased, strict=True):
        numbers[position] = number


class RedisStore:
    """Counts every request in Redis: ``INCR`` and ``EXPIRE`` in one transaction.

    :meth:`count` uses ``redis.asyncio`` on the event loop (no thread). Errors are raised
    (see :class:`FailoverStore`).
    """

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self.url = url
        self.timeout_seconds = timeout_seconds
        # redis.asyncio connections belong to the loop that opened them.
        self._async_client: redis.asyncio.Redis | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None

    def _redis_key(self, window: Window, key: str) -> str:
        return f"registry-tokens:ratelimit:{key}:{window.start}"

    def _client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_loop is not loop:
            self._async_loop = loop
            self._async_client = redis.asyncio.Redis.from_url(
                self.url,
                socket_timeout=self.timeout_seconds,
                socket_connect_timeout=self.timeout_seconds,
            )
        return self._async_client

    async def count(self, window: Window, subjects: Sequence[Counted]) -> list[int | None]:
        async with self._client().pipeline(transaction=True) as pipeline:
            for subject in subjects:
                pipeline.incr(self._redis_key(window, subject.key))
                pipeline.expire(self._redis_key(window, subject.key), window.seconds * 2)
            results = await pipeline.execute()
        return [int(count) for count in results[0::2]]

    async def peek(self, window: Window, key: str) -> int:
        """The key's exact count (``GET``; a key not yet counted is 0)."""
        value = await self._client().get(self._redis_key(window, key))
        return int(value) if value is not None else 0


class FailoverStore:
    """Redis first; while Redis fails, the lease store, retrying Redis every few seconds."""

    def __init__(self, primary: CounterStore, fallback: CounterStore, retry_after: float) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retry_after = retry_after
        self._primary_down_until = 0.0
        self._lock = threading.Lock()

    @property
    def primary_is_down(self) -> bool:
        return time.monotonic() < self._primary_down_until

    async def count(self, window: Window, subjects: Sequence[Counted]) -> list[int | None]:
        if not self.primary_is_down:
            try:
                return await self.primary.count(window, subjects)
            except (redis.RedisError, OSError) as error:
                self._primary_failed(error)
        return await self.fallback.count(window, subjects)

    async def peek(self, window: Window, key: str) -> int:
        if not self.primary_is_down:
            try:
                return await self.primary.peek(window, key)
            except (redis.RedisError, OSError) as error:
                self._primary_failed(error)
        return await self.fallback.peek(window, key)

    def _primary_failed(self, error: Exception) -> None:
        with self._lock:
            if not self.primary_is_down:
                logger.warning(
                    "Redis unavailable (%s); counting rate limits in the database "
                    "for the next %.0f seconds",
                    type(error).__name__,
                    self.retry_after,
                )
            self._primary_down_until = time.monotonic() + self.retry_after
