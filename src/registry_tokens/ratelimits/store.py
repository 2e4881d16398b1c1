"""Where request counts live: the database by default, Redis when configured.

Counts must be shared by every worker and instance, so neither store keeps state in the
process. A Redis that is down or slow must not take the API down: :class:`FailoverStore`
counts in the database instead and tries Redis again after a pause.
"""

import logging
import threading
import time
from collections.abc import Sequence
from typing import Protocol

import redis
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from registry_tokens.db import Database
from registry_tokens.ratelimits.models import RateLimitCounter

logger = logging.getLogger("registry_tokens.ratelimits")


class CounterStore(Protocol):
    def hit(self, keys: Sequence[str], window_start: int, window_seconds: int) -> list[int]:
        """Adds one to each key's count in the window; returns the new counts, in order."""
        ...


class DatabaseStore:
    """Counts in the ``rate_limit_counters`` table with one atomic upsert per key."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.dialect = postgresql if not database.settings.is_sqlite else sqlite
        self._last_sweep = 0

    def hit(self, keys: Sequence[str], window_start: int, window_seconds: int) -> list[int]:
        counts = []
        with self.database.writing() as session:
            for key in keys:
                statement = self.dialect.insert(RateLimitCounter).values(
                    key=key, window_start=window_start, count=1
                )
                statement = statement.on_conflict_do_update(
                    index_elements=["key", "window_start"],
                    set_={"count": RateLimitCounter.count + 1},
                ).returning(RateLimitCounter.count)
                counts.append(int(session.execute(statement).scalar_one()))
            if window_start != self._last_sweep:
                # Once per window and process: forget windows that can no longer matter.
                self._last_sweep = window_start
                session.execute(
                    delete(RateLimitCounter).where(
                        RateLimitCounter.window_start < window_start - window_seconds
                    )
                )
        return counts


class RedisStore:
    """Counts in Redis: ``INCR`` and ``EXPIRE`` in one transaction per request."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )

    def hit(self, keys: Sequence[str], window_start: int, window_seconds: int) -> list[int]:
        pipeline = self.client.pipeline(transaction=True)
        for key in keys:
            redis_key = f"registry-tokens:ratelimit:{key}:{window_start}"
            pipeline.incr(redis_key)
            pipeline.expire(redis_key, window_seconds * 2)
        results = pipeline.execute()
        return [int(count) for count in results[0::2]]


class FailoverStore:
    """Redis first; while Redis fails, the database, retrying Redis every few seconds."""

    def __init__(self, primary: CounterStore, fallback: CounterStore, retry_after: float) -> None:
        self.primary = primary
        self.fallback = fallback
        self.retry_after = retry_after
        self._primary_down_until = 0.0
        self._lock = threading.Lock()

    @property
    def primary_is_down(self) -> bool:
        return time.monotonic() < self._primary_down_until

    def hit(self, keys: Sequence[str], window_start: int, window_seconds: int) -> list[int]:
        if not self.primary_is_down:
            try:
                return self.primary.hit(keys, window_start, window_seconds)
            except redis.RedisError as error:
                with self._lock:
                    if not self.primary_is_down:
                        logger.warning(
                            "Redis unavailable (%s); counting rate limits in the database "
                            "for the next %.0f seconds",
                            type(error).__name__,
                            self.retry_after,
                        )
                    self._primary_down_until = time.monotonic() + self.retry_after
        return self.fallback.hit(keys, window_start, window_seconds)
