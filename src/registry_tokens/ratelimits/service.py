"""Deciding whether a request may proceed, and what the ``RateLimit-*`` headers say.

The entry points are async: served from a lease they do no I/O and take no thread; a new
lease goes to a worker thread, Redis is asked on the event loop.
"""

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from registry_tokens.db import Database
from registry_tokens.kit.errors import AppError
from registry_tokens.ratelimits.store import (
    Counted,
    CounterStore,
    FailoverStore,
    LeaseStore,
    RedisStore,
    Window,
)
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

    async def hit(self, subjects: Sequence[Subject]) -> Allowance | None:
        """Counts the request against every limited subject; 429 if any is over its limit.

        ``None`` when nothing is limited, or when the store could not count (fail open).
        """
        limited = [subject for subject in subjects if subject.limit > 0]
        if not limited:
            return None
        window, reset = self._window()
        counts = await self.store.count(window, _counted(limited))
        return _decide(limited, counts, reset)

    def _window(self) -> tuple[Window, int]:
        now = self.clock()
        start = int(now // self.window_seconds) * self.window_seconds
        reset = max(1, math.ceil(start + self.window_seconds - now))
        return Window(start, self.window_seconds), reset


def _counted(subjects: Sequence[Subject]) -> list[Counted]:
    return [Counted(subject.key, subject.limit) for subject in subjects]


def _decide(
    subjects: Sequence[Subject], counts: Sequence[int | None], reset: int
) -> Allowance | None:
    allowances = [
        Allowance(limit=subject.limit, current=count, reset_seconds=reset)
        for subject, count in zip(subjects, counts, strict=True)
        if count is not None
    ]
    if not allowances:
        return None
    tightest = min(allowances, key=lambda allowance: allowance.limit - allowance.current)
    if tightest.exceeded:
        raise RateLimited(tightest)
    return tightest


class RateLimitPolicy:
    """Which subjects a request counts against, under the configured limits."""

    def __init__(self, settings: Settings, limiter: RateLimiter) -> None:
        self.settings = settings
        self.limiter = limiter

    @classmethod
    def build(cls, settings: Settings, database: Database) -> "RateLimitPolicy":
        store: CounterStore = LeaseStore(database)
        if settings.redis_url:
            store = FailoverStore(
                RedisStore(settings.redis_url, settings.redis_timeout_seconds),
                store,
                retry_after=settings.redis_retry_after_seconds,
            )
        return cls(settings, RateLimiter(store, settings.rate_limit_window_seconds))

    @property
    def counts_callers(self) -> bool:
        """Whether :meth:`for_caller` counts anything (and so may write to the store)."""
        return (
            self.settings.rate_limit_per_user > 0 or self.settings.rate_limit_per_organization > 0
        )

    @property
    def counts_organizations(self) -> bool:
        return self.settings.rate_limit_per_organization > 0

    async def for_caller(
        self, user_id: uuid.UUID, organization_id: uuid.UUID | None
    ) -> Allowance | None:
        """Counts against the user, and the organization when one is given.

        The caller passes only an organization the user may act in (member, and the token
        not limited away from it): no one can spend another organization's allowance, or
        learn from its headers that it exists.
        """
        return await self.limiter.hit(self._caller_subjects(user_id, organization_id))

    async def for_client(self, address: str) -> Allowance | None:
        """Requests without a valid token count against the client's address."""
        return await self.limiter.hit(self._client_subjects(address))

    async def for_refused_token(self, token_id: uuid.UUID) -> Allowance | None:
        """Counts a refused use of a registry token that is to be recorded in the audit log
        (429, ``RateLimited``, once the token's refusals fill the window)."""
        return await self.limiter.hit(
            [Subject("refused_token", str(token_id), self.settings.refusals_recorded_per_token)]
        )

    def _caller_subjects(
        self, user_id: uuid.UUID, organization_id: uuid.UUID | None
    ) -> list[Subject]:
        subjects = [Subject("user", str(user_id), self.settings.rate_limit_per_user)]
        if organization_id is not None:
            subjects.append(
                Subject(
                    "organization", str(organization_id), self.settings.rate_limit_per_organization
                )
            )
        return subjects

    def _client_subjects(self, address: str) -> list[Subject]:
        return [Subject("client", address, self.settings.rate_limit_per_client)]
