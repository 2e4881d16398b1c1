"""Rate-limit leases on a real database (``REGISTRY_TOKENS_TEST_BACKEND``): two limiters on
one database stand for two processes. Clocks are injected; nothing sleeps."""

import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import make_url

from registry_tokens.db import Database, migrate
from registry_tokens.ratelimits.models import RateLimitCounter
from registry_tokens.ratelimits.service import (
    Allowance,
    RateLimited,
    RateLimiter,
    RateLimitPolicy,
    Subject,
)
from registry_tokens.ratelimits.store import (
    MAX_LEASE,
    FailoverStore,
    LeaseStore,
    RedisStore,
    lease_size,
)
from registry_tokens.settings import Settings
from tests.harness import BACKEND, POSTGRES_ADMIN_URL, free_port, scratch_database

WINDOW = 60
START = 1_000_000 * WINDOW  # a window's start
REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = START + 0.5

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    with scratch_database(tmp_path) as scratch:
        database = Database(Settings(database_url=scratch))
        migrate.upgrade(database)
        database.dispose()
        yield scratch


@pytest.fixture
def open_database(url: str) -> Iterator[Callable[..., Database]]:
    """A new engine on the test's database each call: one per simulated process."""
    opened: list[Database] = []

    def opener(**settings: Any) -> Database:
        database = Database(Settings(database_url=url, **settings))
        opened.append(database)
        return database

    yield opener
    for database in opened:
        database.dispose()


def client(limit: int, name: str = "10.0.0.1") -> Subject:
    return Subject("client", name, limit)


def admitted(limiter: RateLimiter, subject: Subject) -> int | None:
    """The request's number if admitted, ``None`` if refused."""
    try:
        allowance = anyio.run(limiter.hit, [subject])
    except RateLimited:
        return None
    assert allowance is not None
    return allowance.tightest.current


def shared_count(database: Database, key: str, window_start: int = START) -> int | None:
    with database.reading() as session:
        return session.scalar(
            select(RateLimitCounter.count).where(
                RateLimitCounter.key == key, RateLimitCounter.window_start == window_start
            )
        )


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while inside."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(database.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(database.engine, "before_cursor_execute", record)


@pytest.mark.parametrize("limit", [1, 2, 12, 17, 200, 9000])
def test_one_instance_counts_exactly_to_the_edge(
    open_database: Callable[..., Database], limit: int
) -> None:
    limiter = RateLimiter(LeaseStore(open_database()), WINDOW, Clock())
    subject = client(limit)

    async def run() -> None:
        for number in range(1, limit + 1):
            allowance = await limiter.hit([subject])
            assert allowance is not None
            assert allowance.each == (
                Allowance(limit=limit, current=number, reset_seconds=WINDOW, kind="client"),
            )
            assert allowance.tightest.remaining == limit - number
        for number in (limit + 1, limit + 2, limit + 3):
            with pytest.raises(RateLimited) as refused:
                await limiter.hit([subject])
            assert refused.value.status == 429
            assert refused.value.extra == {
                "scope": "rest",
                "limit": limit,
                "current": number,
                "reset": WINDOW,
            }
            assert refused.value.headers["RateLimit-Remaining"] == "0"
            assert refused.value.headers["Retry-After"] == str(WINDOW)

    anyio.run(run)


def test_no_overshoot_across_instances_under_concurrency(
    open_database: Callable[..., Database],
) -> None:
    limit = 700
    limiters = [RateLimiter(LeaseStore(open_database()), WINDOW, Clock()) for _ in range(3)]
    numbers: list[int] = []
    refusals = []
    lock = threading.Lock()

    def hammer(limiter: RateLimiter) -> None:
        while (number := admitted(limiter, client(limit))) is not None:
            with lock:
                numbers.append(number)
        with lock:
            refusals.append(limiter)

    threads = [threading.Thread(target=hammer, args=(lim,)) for lim in limiters for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Every number up to the limit was handed out exactly once, and none above it.
    assert sorted(numbers) == list(range(1, limit + 1))
    assert len(refusals) == 12


def test_concurrent_requests_of_one_process_never_double_spend(
    open_database: Callable[..., Database],
) -> None:
    limit = 250
    policy = RateLimitPolicy(
        Settings(rate_limit_per_client=limit),
        RateLimiter(LeaseStore(open_database()), WINDOW, Clock()),
    )
    outcomes: list[int] = []

    async def one() -> None:
        try:
            allowance = await policy.for_client("10.0.0.9")
            assert allowance is not None
            outcomes.append(allowance.tightest.current)
        except RateLimited as refused:
            outcomes.append(-refused.extra["current"])

    async def run() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(limit + 50):
                group.start_soon(one)

    anyio.run(run)
    assert sorted(n for n in outcomes if n > 0) == list(range(1, limit + 1))
    assert sorted(-n for n in outcomes if n < 0) == list(range(limit + 1, limit + 51))


def test_unused_leases_are_the_only_quota_refused_early(
    open_database: Callable[..., Database],
) -> None:
    """A lease another process holds, unused, is refused to this one: at most its size."""
    limit = 200
    database = open_database()
    idle = [RateLimiter(LeaseStore(open_database()), WINDOW, Clock()) for _ in range(3)]
    busy = RateLimiter(LeaseStore(database), WINDOW, Clock())
    for limiter in idle:  # each takes one request and keeps the rest of its lease
        assert admitted(limiter, client(limit)) is not None
    held = shared_count(database, "client:10.0.0.1")
    assert held == 3 * lease_size(limit, 0) == 3 * (limit // 8)

    served = 0
    while admitted(busy, client(limit)) is not None:
        served += 1
    unused = held - 3
    assert served == limit - held
    assert limit - served - 3 == unused <= 3 * min(MAX_LEASE, limit // 8)
    # The holders still spend what they leased, so the window admits exactly the limit.
    for limiter in idle:
        while admitted(limiter, client(limit)) is not None:
            served += 1
    assert served + 3 == limit


def test_the_fast_path_sends_no_statement(open_database: Callable[..., Database]) -> None:
    limit = 20_000
    database = open_database()
    limiter = RateLimiter(LeaseStore(database), WINDOW, Clock())
    first = lease_size(limit, 0)
    assert first == MAX_LEASE
    with statements(database) as sent:
        assert admitted(limiter, client(limit)) == 1
    assert sent, "the first request leases"
    assert shared_count(database, "client:10.0.0.1") == first

    async def spend(count: int) -> None:
        for _ in range(count):
            await limiter.hit([client(limit)])

    with statements(database) as sent:
        anyio.run(spend, first - 1)
    assert sent == []
    assert shared_count(database, "client:10.0.0.1") == first  # changes only at a lease
    with statements(database) as sent:
        anyio.run(spend, 1)
    assert sent
    assert shared_count(database, "client:10.0.0.1") == first + lease_size(limit, first)


def test_the_fast_path_takes_no_thread(open_database: Callable[..., Database]) -> None:
    """With the only worker thread busy, requests served from a lease still complete."""
    limit = 5000
    policy = RateLimitPolicy(
        Settings(rate_limit_per_client=limit, rate_limit_per_user=limit),
        RateLimiter(LeaseStore(open_database()), WINDOW, Clock()),
    )
    user = uuid.uuid4()

    async def run() -> None:
        await policy.for_client("10.0.0.2")  # leases
        await policy.for_caller(user, None)
        threads = anyio.to_thread.current_default_thread_limiter()
        threads.total_tokens = 1
        release = threading.Event()

        async def occupy_the_thread() -> None:
            await anyio.to_thread.run_sync(release.wait)

        async with anyio.create_task_group() as group:
            group.start_soon(occupy_the_thread)
            while threads.borrowed_tokens < 1:
                await anyio.sleep(0)
            try:
                with anyio.fail_after(10):
                    for _ in range(100):
                        await policy.for_client("10.0.0.2")
                        await policy.for_caller(user, None)
            finally:
                release.set()

    anyio.run(run)


def test_old_windows_are_swept_and_forgotten(open_database: Callable[..., Database]) -> None:
    database = open_database()
    clock = Clock()
    store = LeaseStore(database)
    limiter = RateLimiter(store, WINDOW, clock)
    for number in range(40):
        admitted(limiter, client(100, f"10.1.0.{number}"))
    assert shared_count(database, "client:10.1.0.0") == 100 // 8

    clock.now += WINDOW  # the next window starts afresh; the last one is kept
    assert admitted(limiter, client(100)) == 1
    assert len(store._leases) == 1  # leases of past windows are dropped from memory
    assert shared_count(database, "client:10.1.0.0") == 100 // 8

    clock.now += WINDOW
    assert admitted(limiter, client(100)) == 1
    with database.reading() as session:
        windows = set(session.scalars(select(RateLimitCounter.window_start)))
    assert windows == {START + WINDOW, START + 2 * WINDOW}


@contextmanager
def unwritable(url: str, database: Database) -> Iterator[None]:
    """The database cannot be written while inside: locked (SQLite) or gone (PostgreSQL)."""
    if BACKEND == "sqlite":
        path = make_url(url).database
        assert path is not None
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    name = make_url(url).database
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        yield
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        migrate.upgrade(database)
    finally:
        admin.dispose()


def test_a_failing_database_allows_requests_and_says_so_once_a_window(
    url: str, open_database: Callable[..., Database], caplog: pytest.LogCaptureFixture
) -> None:
    database = open_database(sqlite_busy_timeout_ms=0)
    clock = Clock()
    limiter = RateLimiter(LeaseStore(database), WINDOW, clock)
    caplog.set_level(logging.INFO, logger="registry_tokens.ratelimits")

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    assert admitted(limiter, client(2, "10.2.0.1")) == 1  # a lease of one, used
    with unwritable(url, database):
        for _ in range(5):  # over the limit of 2, and all allowed: nothing could count them
            assert anyio.run(limiter.hit, [client(2, "10.2.0.1")]) is None
            assert anyio.run(limiter.hit, [client(2, "10.2.0.2")]) is None
        assert len(warnings()) == 1
        assert "cannot be written" in warnings()[0]
        clock.now += WINDOW
        assert anyio.run(limiter.hit, [client(2)]) is None
        assert len(warnings()) == 2

    # The next request tries again, and counts.
    assert admitted(limiter, client(2)) == 1
    assert admitted(limiter, client(2)) == 2
    assert admitted(limiter, client(2)) is None
    assert "can be written again" in caplog.records[-1].getMessage()
    assert len(warnings()) == 2


def test_one_failing_subject_leaves_the_others_counted(
    url: str, open_database: Callable[..., Database]
) -> None:
    """A request charged to a subject with a lease and one without: only the lease counts."""
    database = open_database(sqlite_busy_timeout_ms=0)
    limiter = RateLimiter(LeaseStore(database), WINDOW, Clock())
    user = Subject("user", "u", 1000)
    assert anyio.run(limiter.hit, [user]) is not None
    with unwritable(url, database):
        allowance = anyio.run(limiter.hit, [user, Subject("organization", "o", 10)])
    assert allowance is not None
    assert allowance.each == (Allowance(limit=1000, current=2, reset_seconds=WINDOW, kind="user"),)


def redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(not redis_up(), reason="no Redis at 127.0.0.1:6379")


@needs_redis
def test_redis_counts_every_request_exactly_across_instances() -> None:
    limit = 9
    name = uuid.uuid4().hex
    limiters = [RateLimiter(RedisStore(REDIS_URL, 1.0), WINDOW, Clock()) for _ in range(2)]

    async def run() -> list[int]:
        numbers = []
        for number in range(limit + 2):
            limiter = limiters[number % 2]
            try:
                allowance = await limiter.hit([client(limit, name)])
                assert allowance is not None
                numbers.append(allowance.tightest.current)
            except RateLimited as refused:
                numbers.append(-refused.extra["current"])
        return numbers

    assert anyio.run(run) == [*range(1, limit + 1), -(limit + 1), -(limit + 2)]
    # Another event loop (and the blocking client) carry on the same counts.
    assert anyio.run(run) == [-n for n in range(limit + 3, limit + 14)]
    with pytest.raises(RateLimited):
        anyio.run(limiters[0].hit, [client(limit, name)])


def test_a_dead_redis_fails_over_to_leases(
    open_database: Callable[..., Database], caplog: pytest.LogCaptureFixture
) -> None:
    database = open_database()
    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0", 0.25)
    limiter = RateLimiter(FailoverStore(dead, LeaseStore(database), 5), WINDOW, Clock())

    async def run() -> list[int | None]:
        return [await admitted_async(limiter, client(3)) for _ in range(5)]

    assert anyio.run(run) == [1, 2, 3, None, None]
    # Once the shared row is at the limit, refusals are numbered in memory, not written.
    assert shared_count(database, "client:10.0.0.1") == 3
    assert [r.getMessage() for r in caplog.records].count(
        "Redis unavailable (ConnectionError); counting rate limits in the database for the "
        "next 5 seconds"
    ) == 1


async def admitted_async(limiter: RateLimiter, subject: Subject) -> int | None:
    try:
        allowance = await limiter.hit([subject])
    except RateLimited:
        return None
    assert allowance is not None
    return allowance.tightest.current


# --- Reading a window without counting (GET …/rate_limit) --------------------------------


def test_peek_is_exact_for_one_process_and_an_upper_bound_for_several(
    open_database: Callable[..., Database],
) -> None:
    limit = 200  # leases of 25, then smaller
    subject = client(limit, "peeked")
    one = RateLimiter(LeaseStore(open_database()), WINDOW, Clock())
    other = RateLimiter(LeaseStore(open_database()), WINDOW, Clock())

    async def run() -> None:
        window, _ = one.window()
        assert await one.store.peek(window, subject.key) == 0  # nothing counted yet
        for admitted_so_far in range(1, 6):
            await one.hit([subject])
            # Alone, this process's count is the window's, though it leased 25.
            assert await one.store.peek(window, subject.key) == admitted_so_far
            assert await one.status(subject) == await one.status(subject)  # counts nothing
        for _ in range(3):
            await other.hit([subject])
        # Eight requests in all: each process sees its own exactly and the other's lease
        # whole, so at least eight and at most the other's unused numbers more.
        for limiter, unused_elsewhere in ((one, 25 - 3), (other, 25 - 5)):
            seen = await limiter.store.peek(window, subject.key)
            assert 8 <= seen <= 8 + unused_elsewhere
        status = await one.status(subject)
        assert (status.limit, status.enforced) == (limit, True)
        assert status.current == await one.store.peek(window, subject.key)
        assert status.reset_at.timestamp() == START + WINDOW
        assert status.reset == WINDOW  # the clock is half a second into the window

    anyio.run(run)


def test_peek_counts_the_refusals_a_process_numbered_in_memory(
    open_database: Callable[..., Database],
) -> None:
    limiter = RateLimiter(LeaseStore(open_database()), WINDOW, Clock())
    subject = client(3, "refused")

    async def run() -> int:
        for _ in range(5):
            await admitted_async(limiter, subject)
        window, _ = limiter.window()
        return await limiter.store.peek(window, subject.key)

    assert anyio.run(run) == 5  # three admitted, two refused: as the 429's "current" says


def test_an_unlimited_subject_is_not_enforced_and_reads_nothing(
    open_database: Callable[..., Database],
) -> None:
    limiter = RateLimiter(LeaseStore(open_database()), WINDOW, Clock())
    status = anyio.run(limiter.status, client(0, "free"))
    assert (status.limit, status.current, status.enforced) == (0, 0, False)


@needs_redis
def test_redis_peek_reads_the_exact_count_and_counts_nothing() -> None:
    limiter = RateLimiter(RedisStore(REDIS_URL, 1.0), WINDOW, Clock())
    subject = client(50, uuid.uuid4().hex)

    async def run() -> list[int]:
        window, _ = limiter.window()
        seen = [await limiter.store.peek(window, subject.key)]
        for _ in range(3):
            await limiter.hit([subject])
            seen.append(await limiter.store.peek(window, subject.key))
        seen.append(await limiter.store.peek(window, subject.key))
        return seen

    assert anyio.run(run) == [0, 1, 2, 3, 3]


def test_a_dead_redis_is_peeked_through_the_leases(open_database: Callable[..., Database]) -> None:
    dead = RedisStore(f"redis://127.0.0.1:{free_port()}/0", 0.25)
    limiter = RateLimiter(FailoverStore(dead, LeaseStore(open_database()), 5), WINDOW, Clock())
    subject = client(10, "failover")

    async def run() -> int:
        window, _ = limiter.window()
        return await limiter.store.peek(window, subject.key)

    assert anyio.run(run) == 0
