"""Deciding whether a request may proceed, and what the ``RateLimit-*`` headers say."""

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread

from registry_tokens.db import Database
from registry_tokens.kit.errors import AppError
from registry_tokens.ratelimits.store import CounterStore, DatabaseStore, FailoverStore, RedisStore
from registry_tokens.settings import Settings

SCOPE = "rest"  # Buildkite's name for the REST API's limits


@dataclass(frozen=True)
class Subject:
    """What a request counts against: ``organization``/``user``/``client`` and an id."""

    kind: str
    identifier: str
    limit: int

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.identifier}"


@dataclass(frozen=True)
class Allowance:
    """The most constrained subject's state after counting this request."""

    limit: int
    current: int
    reset_seconds: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.current)

    @property
    def exceeded(self) -> bool:
        return self.current > self.limit

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Scope": SCOPE,
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


class RateLimited(AppError):
    def __init__(self, allowance: Allowance) -> None:
        super().__init__(
            "You have exceeded your API rate limit. Please wait "
            f"{allowance.reset_seconds} seconds before making more requests.",
            429,
            extra={
                "scope": SCOPE,
                "limit": allowance.limit,
                "current": allowance.current,
                "reset": allowance.reset_seconds,
            },
            headers={**allowance.headers(), "Retry-After": str(allowance.reset_seconds)},
        )


class RateLimiter:
    """Fixed windows of ``window_seconds``, aligned to the clock so every process agrees."""

    def __init__(
        self,
        store: CounterStore,
        window_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.window_seconds = window_seconds
        self.clock = clock

    def hit(self, subjects: list[Subject]) -> Allowance | None:
        """Counts the request against every limited subject; 429 if any is over its limit."""
        limited = [subject for subject in subjects if subject.limit > 0]
        if not limited:
            return None
        now = self.clock()
        window_start = int(now // self.window_seconds) * self.window_seconds
        reset = max(1, math.ceil(window_start + self.window_seconds - now))
        counts = self.store.hit([s.key for s in limited], window_start, self.window_seconds)
        allowances = [
            Allowance(limit=subject.limit, current=count, reset_seconds=reset)
            for subject, count in zip(limited, counts, strict=True)
        ]
        tightest = min(allowances, key=lambda allowance: allowance.limit - allowance.current)
        if tightest.exceeded:
            raise RateLimited(tightest)
        return tightest


class RateLimitPolicy:
    """Which subjects a request counts against, under the configured limits."""

    def __init__(self, settings: Settings, database: Database, limiter: RateLimiter) -> None:
        self.settings = settings
        self.database = database
        self.limiter = limiter

    @classmethod
    def build(cls, settings: Settings, database: Database) -> "RateLimitPolicy":
        store: CounterStore = DatabaseStore(database)
        if settings.redis_url:
            store = FailoverStore(
                RedisStore(settings.redis_url, settings.redis_timeout_seconds),
                store,
                retry_after=settings.redis_retry_after_seconds,
            )
        return cls(settings, database, RateLimiter(store, settings.rate_limit_window_seconds))

    @property
    def counts_callers(self) -> bool:
        """Whether :meth:`for_caller` counts anything (and so writes to the store)."""
        return (
            self.settings.rate_limit_per_user > 0 or self.settings.rate_limit_per_organization > 0
        )

    @property
    def counts_organizations(self) -> bool:
        return self.settings.rate_limit_per_organization > 0

    async def for_caller(
        self, user_id: uuid.UUID, organization_id: uuid.UUID | None
    ) -> Allowance | None:
        """Counts against the user, and the organization (one the caller may see)."""
        subjects = [Subject("user", str(user_id), self.settings.rate_limit_per_user)]
        if organization_id is not None:
            subjects.append(
                Subject(
                    "organization", str(organization_id), self.settings.rate_limit_per_organization
                )
            )
        return await anyio.to_thread.run_sync(self.limiter.hit, subjects)

    async def for_client(self, address: str) -> Allowance | None:
        """Requests without a valid token count against the client's address."""
        subjects = [Subject("client", address, self.settings.rate_limit_per_client)]
        return await anyio.to_thread.run_sync(self.limiter.hit, subjects)
