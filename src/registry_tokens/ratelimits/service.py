"""Deciding whether a request may proceed, and what the ``RateLimit-*`` headers say.

The entry points are async: served from a lease they do no I/O and take no thread; a new
lease goes to a worker thread, Redis is asked on the event loop.
"""

import contextlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from registry_tokens.db import Database
from registry_tokens.kit.errors import AppError
from registry_tokens.kit.metrics import RATE_LIMITED
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
    """One subject's state after counting this request."""

    limit: int
    current: int
    reset_seconds: int
    kind: str = ""

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.current)

    @property
    def exceeded(self) -> bool:
        return self.current > self.limit


@dataclass(frozen=True)
class Allowances:
    """Every limited subject's state after counting this request (at least one)."""

    each: tuple[Allowance, ...]

    @property
    def tightest(self) -> Allowance:
        return min(self.each, key=lambda allowance: allowance.limit - allowance.current)

    def of(self, kind: str) -> Allowance | None:
        return next((allowance for allowance in self.each if allowance.kind == kind), None)

    def headers(self) -> dict[str, str]:
        """Buildkite's names: ``RateLimit-*`` for the organization (the tightest other
        limit when none is counted: a path without one, or a caller without a valid
        token), ``RateLimit-User-*`` for the user."""
        main = self.of("organization") or self.tightest
        headers = {
            "RateLimit-Scope": SCOPE,
            "RateLimit-Limit": str(main.limit),
            "RateLimit-Remaining": str(main.remaining),
            "RateLimit-Reset": str(main.reset_seconds),
        }
        user = self.of("user")
        if user is not None:
            headers["RateLimit-User-Limit"] = str(user.limit)
            headers["RateLimit-User-Remaining"] = str(user.remaining)
            headers["RateLimit-User-Reset"] = str(user.reset_seconds)
        return headers


class RateLimited(AppError):
    """429: the tightest limit is exceeded; its state is the body, every limit's the
    headers."""

    def __init__(self, allowances: Allowances) -> None:
        tightest = allowances.tightest
        self.kind = tightest.kind  # the limit exceeded: organization, user, client, …
        super().__init__(
            "You have exceeded your API rate limit. Please wait "
            f"{tightest.reset_seconds} seconds before making more requests.",
            429,
            extra={
                "scope": SCOPE,
                "limit": tightest.limit,
                "current": tightest.current,
                "reset": tightest.reset_seconds,
            },
            headers={**allowances.headers(), "Retry-After": str(tightest.reset_seconds)},
        )


@dataclass(frozen=True)
class RateLimitStatus:
    """A subject's window as ``GET …/rate_limit`` shows it."""

    limit: int
    current: int
    reset: int
    reset_at: datetime
    enforced: bool


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

    async def hit(self, subjects: Sequence[Subject]) -> Allowances | None:
        """Counts the request against every limited subject; 429 if any is over its limit.

        ``None`` when nothing is limited, or when the store could not count (fail open).
        """
        limited = [subject for subject in subjects if subject.limit > 0]
        if not limited:
            return None
        window, reset = self.window()
        counts = await self.store.count(window, _counted(limited))
        return _decide(limited, counts, reset)

    async def status(self, subject: Subject) -> RateLimitStatus:
        """The subject's current window, read without counting anything."""
        window, reset = self.window()
        reset_at = datetime.fromtimestamp(window.start + window.seconds, UTC)
        if subject.limit <= 0:
            return RateLimitStatus(0, 0, reset, reset_at, enforced=False)
        current = await self.store.peek(window, subject.key)
        return RateLimitStatus(subject.limit, current, reset, reset_at, enforced=True)

    def window(self) -> tuple[Window, int]:
        """The window now, and the seconds until it ends (at least 1)."""
        now = self.clock()
        start = int(now // self.window_seconds) * self.window_seconds
        reset = max(1, math.ceil(start + self.window_seconds - now))
        return Window(start, self.window_seconds), reset


def _counted(subjects: Sequence[Subject]) -> list[Counted]:
    return [Counted(subject.key, subject.limit) for subject in subjects]


def _decide(
    subjects: Sequence[Subject], counts: Sequence[int | None], reset: int
) -> Allowances | None:
    counted = tuple(
        Allowance(limit=subject.limit, current=count, reset_seconds=reset, kind=subject.kind)
        for subject, count in zip(subjects, counts, strict=True)
        if count is not None
    )
    if not counted:
        return None
    allowances = Allowances(counted)
    if allowances.tightest.exceeded:
        raise RateLimited(allowances)
    return allowances


async def _refusals_counted(hit: Awaitable[Allowances | None]) -> Allowances | None:
    """A count of a request's, whose 429 is counted in the metrics (``RATE_LIMITED``);
    the counts of refusals to record (``refused_*``) are not requests refused."""
    try:
        return await hit
    except RateLimited as limited:
        RATE_LIMITED.labels(limited.kind).inc()
        raise


class RateLimitPolicy:
    """Which subjects a request counts against, under the configured limits."""

    def __init__(
        self, settings: Settings, limiter: RateLimiter, sign_in_limiter: RateLimiter | None = None
    ) -> None:
        self.settings = settings
        self.limiter = limiter
        # The console's sign-ins count in windows of their own (longer than the API's),
        # in the same store.
        self.sign_in_limiter = sign_in_limiter or RateLimiter(
            limiter.store, settings.sign_in_window_seconds, limiter.clock
        )

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
    ) -> Allowances | None:
        """Counts against the user, and the organization when one is given.

        The caller passes only an organization the user may act in (member, and the token
        not limited away from it): no one can spend another organization's allowance, or
        learn from its headers that it exists.
        """
        return await _refusals_counted(
            self.limiter.hit(self._caller_subjects(user_id, organization_id))
        )

    async def for_oidc(self, organization_id: uuid.UUID, address: str) -> Allowances | None:
        """An OIDC token acts for no user: it counts against its registry's organization
        and the client's address."""
        return await _refusals_counted(
            self.limiter.hit([*self._client_subjects(address), self._organization(organization_id)])
        )

    async def for_refused_oidc(self, organization_id: uuid.UUID, address: str) -> Allowances | None:
        """Counts a refused OIDC token to be recorded in the organization's audit log, per
        client address (a refused token may be made up anew for every request, so it is
        the sender, not the token, that is bounded)."""
        return await self.limiter.hit(
            [
                Subject(
                    "refused_oidc",
                    f"{organization_id}:{address}",
                    self.settings.refusals_recorded_per_token,
                )
            ]
        )

    async def for_client(self, address: str) -> Allowances | None:
        """Requests without a valid token count against the client's address."""
        return await _refusals_counted(self.limiter.hit(self._client_subjects(address)))

    async def for_refused_token(self, token_id: uuid.UUID) -> Allowances | None:
        """Counts a refused use of a registry token that is to be recorded in the audit log
        (429, ``RateLimited``, once the token's refusals fill the window)."""
        return await self.limiter.hit(
            [Subject("refused_token", str(token_id), self.settings.refusals_recorded_per_token)]
        )

    async def check_sign_in(self, address: str, account: str) -> None:
        """429 (``RateLimited``) when the client's address or the account a sign-in names
        (``account``: a digest of the email, whether or not anyone has it, so the count
        tells nothing) has failed its limit of times in this window; counts nothing."""
        window, reset = self.sign_in_limiter.window()
        over = []
        for subject in self._sign_in_subjects(address, account):
            if subject.limit <= 0:
                continue
            failed = await self.sign_in_limiter.store.peek(window, subject.key)
            if failed >= subject.limit:
                over.append(Allowance(subject.limit, failed + 1, reset, subject.kind))
        if over:
            limited = RateLimited(Allowances(tuple(over)))
            RATE_LIMITED.labels(limited.kind).inc()
            raise limited

    async def count_failed_sign_in(self, address: str, account: str) -> None:
        """Counts a refused sign-in against the address and the account (successes are
        not counted: a busy office behind one address is not locked out by signing in)."""
        # Past the limit, this one was refused anyway; the next is stopped by check_sign_in.
        with contextlib.suppress(RateLimited):
            await self.sign_in_limiter.hit(self._sign_in_subjects(address, account))

    def _sign_in_subjects(self, address: str, account: str) -> list[Subject]:
        return [
            Subject("sign_in_client", address, self.settings.sign_in_attempts_per_client),
            Subject("sign_in_account", account, self.settings.sign_in_attempts_per_account),
        ]

    async def organization_status(self, organization_id: uuid.UUID) -> RateLimitStatus:
        """The organization's REST window, counting nothing (the request asking was
        counted at the gate like any other)."""
        return await self.limiter.status(self._organization(organization_id))

    def _organization(self, organization_id: uuid.UUID) -> Subject:
        return Subject(
            "organization", str(organization_id), self.settings.rate_limit_per_organization
        )

    def _caller_subjects(
        self, user_id: uuid.UUID, organization_id: uuid.UUID | None
    ) -> list[Subject]:
        subjects = [Subject("user", str(user_id), self.settings.rate_limit_per_user)]
        if organization_id is not None:
            subjects.append(self._organization(organization_id))
        return subjects

    def _client_subjects(self, address: str) -> list[Subject]:
        return [Subject("client", address, self.settings.rate_limit_per_client)]
