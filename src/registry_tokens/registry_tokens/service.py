"""Registry tokens: the spec's five operations plus rotation, with authorization, limits
and the audit log; and the one method that revokes a registry token."""

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry_tokens.audit.service import Actor, EventType, Subject, record, user_actor
from registry_tokens.db import Database
from registry_tokens.kit.context import Caller, RequestContext, Scope
from registry_tokens.kit.errors import FieldProblem, NotFound, ValidationFailed
from registry_tokens.kit.pagination import Page, PageRequest
from registry_tokens.kit.patterns import normalized_pattern
from registry_tokens.kit.secrets import SecretKind, generate_secret, hash_secret
from registry_tokens.kit.timestamps import truncate_to_millisecond
from registry_tokens.kit.validation import OMITTED, Omitted
from registry_tokens.registries.repository import RegistryRow
from registry_tokens.registries.service import visible_registry
from registry_tokens.registry_tokens.models import RegistryToken, RetiredSecret
from registry_tokens.registry_tokens.repository import (
    LIVE_COUNTS,
    LIVE_PAGE_FROM,
    LIVE_PAGES,
    LIVE_TOKEN,
    STATES,
    RegistryTokenRepository,
    TokenRow,
)
from registry_tokens.registry_tokens.usage import (
    SERIES,
    TOKEN_TOTALS,
    TOTALS,
    TokenTotal,
    UsagePoint,
    UsageRepository,
    current_usage,
    hour_of,
)

DESCRIPTION_MAX_LENGTH = 255
MAX_GRACE_PERIOD_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class TokenChanges:
    """Fields a create or update request sent, as its model (``RegistryTokenCreate``)
    validated them; ``OMITTED`` for those it left out."""

    description: str | Omitted = OMITTED
    expires_at: datetime | Omitted | None = OMITTED
    allowed_cidrs: list[str] | Omitted | None = OMITTED
    allowed_packages: list[str] | Omitted | None = OMITTED
    not_before: datetime | Omitted | None = OMITTED
    max_downloads: int | Omitted | None = OMITTED
    max_clients: int | Omitted | None = OMITTED
    max_bytes: int | Omitted | None = OMITTED
    quota_period: str | Omitted | None = OMITTED


# The limits a create or update may set, beside description, expiry and CIDRs.
LIMITS = ("max_downloads", "max_clients", "max_bytes", "quota_period")


MAX_USAGE_BUCKETS = {"hour": 24 * 31, "day": 366}


@dataclass(frozen=True)
class UsageWindow:
    """The range and buckets a usage request asks for: ``[start, end)``, aligned to the
    interval's UTC buckets, at most ``MAX_USAGE_BUCKETS`` of them."""

    start: datetime
    end: datetime
    interval: str  # "hour" or "day"

    @classmethod
    def of(
        cls, start: datetime | None, end: datetime | None, interval: str | None, now: datetime
    ) -> "UsageWindow":
        interval = interval or "day"
        if interval not in MAX_USAGE_BUCKETS:
            raise ValidationFailed([FieldProblem("interval", "invalid", "must be hour or day")])
        step = _step(interval)
        limit = MAX_USAGE_BUCKETS[interval]
        last = _bucket(end or now, interval)
        # The bucket "to" falls in is included, unless "to" is exactly its start.
        stop = last if end is not None and last == end else last + step
        first = (
            _bucket(start, interval)
            if start is not None
            else stop - step * (30 if interval == "day" else 48)
        )
        if first >= stop:
            raise ValidationFailed([FieldProblem("from", "invalid", "must be before to")])
        if (stop - first) / step > limit:
            raise ValidationFailed(
                [FieldProblem("from", "invalid", f"must be at most {limit} {interval}s before to")]
            )
        return cls(first, stop, interval)

    def buckets(self) -> list[datetime]:
        step = _step(self.interval)
        count = int((self.end - self.start) / step)
        return [self.start + step * n for n in range(count)]


def _step(interval: str) -> timedelta:
    return timedelta(hours=1) if interval == "hour" else timedelta(days=1)


def _bucket(moment: datetime, interval: str) -> datetime:
    hour = hour_of(moment)
    return hour if interval == "hour" else hour.replace(hour=0)


@dataclass(frozen=True)
class UsageReport:
    """Downloads per bucket of a window, for one token or every token of a registry
    (then ``tokens``: each one's totals, those with downloads in the window)."""

    registry: RegistryRow
    token: TokenRow | None
    window: UsageWindow
    points: list[UsagePoint]
    totals: UsagePoint
    tokens: list[TokenTotal]


@dataclass(frozen=True)
class RegistryTokenOf:
    """A live token and the registry it belongs to: what every response shows."""

    token: TokenRow
    registry: RegistryRow


@dataclass(frozen=True)
class CreatedRegistryToken(RegistryTokenOf):
    secret: str  # shown once in the create (or rotate) response, never stored


class ListPositions:
    """What serving the lists of live tokens has learned: each list's length, and the
    first token of each page served, keyed by registry, ``tokens_version`` (and page).

    A bounded memo in the process: it only ever answers for the version a request has
    just read, and is emptied when full.
    """

    MAX_ENTRIES = 20_000

    def __init__(self) -> None:
        self._counts: dict[tuple[uuid.UUID, int], int] = {}
        self._starts: dict[tuple[uuid.UUID, int, int, int], tuple[datetime, uuid.UUID]] = {}

    def count(self, registry_id: uuid.UUID, version: int) -> int | None:
        return self._counts.get((registry_id, version))

    def remember_count(self, registry_id: uuid.UUID, version: int, total: int) -> None:
        if len(self._counts) >= self.MAX_ENTRIES:
            self._counts.clear()
        self._counts[(registry_id, version)] = total

    def page_start(
        self, registry_id: uuid.UUID, version: int, request: PageRequest
    ) -> tuple[datetime, uuid.UUID] | None:
        if request.page == 1:
            return None  # nothing to skip
        return self._starts.get((registry_id, version, request.per_page, request.page))

    def remember_page_start(
        self, registry_id: uuid.UUID, request: PageRequest, row: TokenRow
    ) -> None:
        """``row``: the page's first, read at its own ``tokens_version``."""
        if request.page == 1:
            return
        if len(self._starts) >= self.MAX_ENTRIES:
            self._starts.clear()
        key = (registry_id, row.tokens_version, request.per_page, request.page)
        self._starts[key] = (row.created_at, row.id)


class RegistryTokenService:
    def __init__(
        self, database: Database, secret_key: bytes, clock: Callable[[], datetime]
    ) -> None:
        self.database = database
        self.secret_key = secret_key
        self.clock = clock
        self._positions = ListPositions()

    def create(
        self,
        caller: Caller,
        org: str,
        registry: str,
        changes: TokenChanges,
        context: RequestContext,
    ) -> CreatedRegistryToken:
        caller.require(Scope.WRITE_REGISTRIES)
        fields = self._checked(changes, creating=True)
        secret = generate_secret(SecretKind.REGISTRY_TOKEN)
        with _registry_still_there(), self.database.writing() as session:
            found = visible_registry(self.database, caller, org, registry, session)
            fields = _dated(_with_patterns(fields, found), {})
            token = RegistryToken(
                registry_id=found.id,
                secret_hash=hash_secret(self.secret_key, secret),
                created_by_id=caller.user,
                **fields,
            )
            token.updated_at = token.created_at
            tokens = RegistryTokenRepository(session)
            tokens.add(token)
            tokens.live_tokens_changed(found.id)
            record(
                session,
                EventType.REGISTRY_TOKEN_CREATED,
                _subject(token, found),
                user_actor(session, caller),
                context,
                _described(fields),
            )
            return CreatedRegistryToken(self._row(session, found, token.id), found, secret)

    def list(
        self,
        caller: Caller,
        org: str,
        registry: str,
        request: PageRequest,
        state: str | None = None,
    ) -> tuple[RegistryRow, Page[TokenRow]]:
        caller.require(Scope.READ_REGISTRIES)
        if state is not None and state not in STATES:
            raise ValidationFailed([FieldProblem("state", "invalid", "must be active or expired")])
        found = visible_registry(self.database, caller, org, registry)
        if state is None:
            return found, self._live_page(found, request)
        values = {"registry_id": found.id, "now": self.clock()}
        rows = self.database.fetch(
            LIVE_PAGES[state], **values, limit=request.per_page, offset=request.offset
        )
        total = self.database.fetch(LIVE_COUNTS[state], **values)[0].total
        return found, Page(items=rows, request=request, total=total)

    def _live_page(self, registry: RegistryRow, request: PageRequest) -> Page[TokenRow]:
        """A page of every live token, with what a previous request learned of the same
        list: its length, and where a page starts. Both are keyed by the registry's
        ``tokens_version``, read from the database with the registry in this request, so
        nothing learned before a create or delete is used after it, by any process.
        Without them, counting the tokens and skipping to a deep page both take time in
        proportion to the tokens: milliseconds at 40,000."""
        version = registry.tokens_version
        start = self._positions.page_start(registry.id, version, request)
        if start is not None:
            rows = self.database.fetch(
                LIVE_PAGE_FROM,
                registry_id=registry.id,
                start_created_at=start[0],
                start_id=start[1],
                limit=request.per_page,
            )
        else:
            rows = self.database.fetch(
                LIVE_PAGES[None],
                registry_id=registry.id,
                limit=request.per_page,
                offset=request.offset,
            )
        if rows:
            self._positions.remember_page_start(registry.id, request, rows[0])
        total = self._positions.count(registry.id, version)
        if total is None:
            counted = self.database.fetch(LIVE_COUNTS[None], registry_id=registry.id)[0]
            total = counted.total
            self._positions.remember_count(registry.id, counted.tokens_version, total)
        return Page(items=rows, request=request, total=total)

    def get(self, caller: Caller, org: str, registry: str, token_id: str) -> RegistryTokenOf:
        caller.require(Scope.READ_REGISTRIES)
        found = visible_registry(self.database, caller, org, registry)
        rows = self.database.fetch(LIVE_TOKEN, registry_id=found.id, token_id=_token_id(token_id))
        if not rows:
            raise NotFound("registry token")
        return RegistryTokenOf(rows[0], found)

    def update(
        self,
        caller: Caller,
        org: str,
        registry: str,
        token_id: str,
        changes: TokenChanges,
        context: RequestContext,
    ) -> RegistryTokenOf:
        """Changes the fields the body names; those left out stay as they are."""
        caller.require(Scope.WRITE_REGISTRIES)
        fields = self._checked(changes, creating=False)
        with self.database.writing() as session:
            found = visible_registry(self.database, caller, org, registry, session)
            tokens = RegistryTokenRepository(session)
            token = _existing(tokens, found.id, token_id)
            fields = _dated(
                _with_patterns(fields, found),
                {"not_before": token.not_before, "expires_at": token.expires_at},
            )
            changed = {
                name: value for name, value in fields.items() if getattr(token, name) != value
            }
            if changed:
                for name, value in changed.items():
                    setattr(token, name, value)
                token.updated_at = self.clock()
                record(
                    session,
                    EventType.REGISTRY_TOKEN_UPDATED,
                    _subject(token, found),
                    user_actor(session, caller),
                    context,
                    {"changed": sorted(changed), **_described(changed)},
                )
                session.flush()
            return RegistryTokenOf(self._row(session, found, token.id), found)

    def rotate(
        self,
        caller: Caller,
        org: str,
        registry: str,
        token_id: str,
        grace_period_seconds: int | None,
        context: RequestContext,
    ) -> CreatedRegistryToken:
        """A new secret for the same token; the old one keeps working for the grace period
        (checked by ``RegistryTokenRotate``: 0 to ``MAX_GRACE_PERIOD_SECONDS``)."""
        caller.require(Scope.WRITE_REGISTRIES)
        grace = grace_period_seconds or 0
        secret = generate_secret(SecretKind.REGISTRY_TOKEN)
        now = self.clock()
        with self.database.writing() as session:
            found = visible_registry(self.database, caller, org, registry, session)
            tokens = RegistryTokenRepository(session)
            token = _existing(tokens, found.id, token_id)
            valid_until = now + timedelta(seconds=grace)
            # No older secret outlives this rotation's grace: "rotate with 0" cuts all off.
            tokens.end_grace_periods(token.id, valid_until)
            tokens.add_retired_secret(
                RetiredSecret(
                    secret_hash=token.secret_hash,
                    registry_token_id=token.id,
                    retired_at=now,
                    valid_until=valid_until,
                )
            )
            token.secret_hash = hash_secret(self.secret_key, secret)
            token.updated_at = now
            record(
                session,
                EventType.REGISTRY_TOKEN_ROTATED,
                _subject(token, found),
                user_actor(session, caller),
                context,
                {"grace_period_seconds": grace},
            )
            session.flush()
            return CreatedRegistryToken(self._row(session, found, token.id), found, secret)

    def delete(
        self, caller: Caller, org: str, registry: str, token_id: str, context: RequestContext
    ) -> None:
        """Revokes the token: from this commit on, no secret of it authenticates anything."""
        caller.require(Scope.WRITE_REGISTRIES)
        with self.database.writing() as session:
            found = visible_registry(self.database, caller, org, registry, session)
            token = _existing(RegistryTokenRepository(session), found.id, token_id)
            self.revoke(
                session,
                token,
                reason="deleted",
                event=EventType.REGISTRY_TOKEN_DELETED,
                actor=user_actor(session, caller),
                context=context,
            )

    def revoke(
        self,
        session: Session,
        token: RegistryToken,
        *,
        reason: str,
        event: EventType,
        actor: Actor,
        context: RequestContext,
        data: dict[str, object] | None = None,
    ) -> None:
        """Revokes a live registry token inside the caller's transaction: the one place
        it is done (deletion, a leak report, the registry's deletion). From the commit on,
        no secret of it authenticates; the registry's ``tokens_version`` moves on (so no
        list position learned before holds) and the event is recorded with the change."""
        token.revoked_at = self.clock()
        token.revoked_reason = reason
        RegistryTokenRepository(session).live_tokens_changed(token.registry_id)
        record(session, event, subject_of(token), actor, context, data)

    def revoke_for_registry_deletion(
        self, session: Session, registry: RegistryRow, caller: Caller, context: RequestContext
    ) -> None:
        """A registry's deletion step (``RegistryService``): each live token is revoked,
        and so recorded; the audit log outlives the registry and its tokens."""
        actor = user_actor(session, caller)
        for token in RegistryTokenRepository(session).live_in(registry.id):
            self.revoke(
                session,
                token,
                reason="deleted",
                event=EventType.REGISTRY_TOKEN_DELETED,
                actor=actor,
                context=context,
                data={"reason": "registry deleted"},
            )

    def disable(
        self, caller: Caller, org: str, registry: str, token_id: str, context: RequestContext
    ) -> RegistryTokenOf:
        """Refused from this commit on, on every process (each request reads it), until
        :meth:`enable`. Disabling a disabled token changes nothing (and records nothing)."""
        return self._switch(caller, org, registry, token_id, context, disabled=True)

    def enable(
        self, caller: Caller, org: str, registry: str, token_id: str, context: RequestContext
    ) -> RegistryTokenOf:
        return self._switch(caller, org, registry, token_id, context, disabled=False)

    def _switch(
        self,
        caller: Caller,
        org: str,
        registry: str,
        token_id: str,
        context: RequestContext,
        *,
        disabled: bool,
    ) -> RegistryTokenOf:
        caller.require(Scope.WRITE_REGISTRIES)
        with self.database.writing() as session:
            found = visible_registry(self.database, caller, org, registry, session)
            token = _existing(RegistryTokenRepository(session), found.id, token_id)
            if (token.disabled_at is not None) != disabled:
                now = self.clock()
                token.disabled_at = truncate_to_millisecond(now) if disabled else None
                token.updated_at = now
                record(
                    session,
                    EventType.REGISTRY_TOKEN_DISABLED
                    if disabled
                    else EventType.REGISTRY_TOKEN_ENABLED,
                    _subject(token, found),
                    user_actor(session, caller),
                    context,
                )
                session.flush()
            return RegistryTokenOf(self._row(session, found, token.id), found)

    def reset_usage(
        self, caller: Caller, org: str, registry: str, token_id: str, context: RequestContext
    ) -> RegistryTokenOf:
        """Counts (and so quotas) start again now; the usage series keeps its history."""
        caller.require(Scope.WRITE_REGISTRIES)
        with self.database.writing() as session:
            found = visible_registry(self.database, caller, org, registry, session)
            token = _existing(RegistryTokenRepository(session), found.id, token_id)
            before = current_usage(
                token.quota_period,
                token.usage_since,
                token.usage_period_start,
                (token.usage_downloads, token.usage_bytes, token.usage_clients),
                self.clock(),
            )
            UsageRepository(session, self.database.is_sqlite).reset(
                token.id, truncate_to_millisecond(self.clock())
            )
            record(
                session,
                EventType.REGISTRY_TOKEN_USAGE_RESET,
                _subject(token, found),
                user_actor(session, caller),
                context,
                {
                    "downloads": before.downloads,
                    "bytes": before.bytes,
                    "clients": before.clients,
                },
            )
            session.flush()
            session.expire_all()
            return RegistryTokenOf(self._row(session, found, token.id), found)

    def usage(
        self,
        caller: Caller,
        org: str,
        registry: str,
        token_id: str | None,
        window: UsageWindow,
    ) -> UsageReport:
        """A token's downloads (``token_id``), or every token's of the registry (``None``),
        per hour or day of the window: every bucket, those without downloads as zeros."""
        caller.require(Scope.READ_REGISTRIES)
        found = visible_registry(self.database, caller, org, registry)
        token: TokenRow | None = None
        values: dict[str, object] = {"start": window.start, "end": window.end}
        if token_id is not None:
            rows = self.database.fetch(
                LIVE_TOKEN, registry_id=found.id, token_id=_token_id(token_id)
            )
            if not rows:
                raise NotFound("registry token")
            token = rows[0]
            values["token_id"] = token.id
        else:
            values["registry_id"] = found.id
        one = token is not None
        counted = {
            point.at: point
            for point in self.database.fetch(SERIES[(window.interval, one)], **values)
        }
        points = [counted.get(at, UsagePoint(at, 0, 0, 0)) for at in window.buckets()]
        total = self.database.fetch(TOTALS[one], **values)[0]
        totals = UsagePoint(window.start, total.downloads or 0, total.bytes or 0, total.clients)
        tokens = [] if one else self.database.fetch(TOKEN_TOTALS, **values)
        return UsageReport(found, token, window, points, totals, tokens)

    def _row(self, session: Session, registry: RegistryRow, token_id: uuid.UUID) -> TokenRow:
        """The token as reads show it, inside the writing transaction."""
        return self.database.fetch_in(
            session, LIVE_TOKEN, registry_id=registry.id, token_id=token_id
        )[0]

    def _checked(self, changes: TokenChanges, *, creating: bool) -> dict[str, object]:
        """The fields to store. The request's model has checked their types and bounds;
        what needs the clock (an expiry in the future) is checked here."""
        problems: list[FieldProblem] = []
        fields: dict[str, object] = {}
        if not isinstance(changes.description, Omitted):
            fields["description"] = changes.description
        elif creating:
            problems.append(FieldProblem("description", "missing", "can't be blank"))
        if not isinstance(changes.expires_at, Omitted):
            if changes.expires_at is not None and changes.expires_at <= self.clock():
                problems.append(FieldProblem("expires_at", "invalid", "must be in the future"))
            else:
                fields["expires_at"] = changes.expires_at
        if not isinstance(changes.allowed_cidrs, Omitted):
            fields["allowed_cidrs"] = changes.allowed_cidrs
        for name in ("allowed_packages", "not_before", *LIMITS):
            value = getattr(changes, name)
            if not isinstance(value, Omitted):
                fields[name] = value
        if problems:
            raise ValidationFailed(problems)
        return fields


def _with_patterns(fields: dict[str, object], registry: RegistryRow) -> dict[str, object]:
    """``allowed_packages`` as names are compared in the registry's ecosystem (each
    pattern once, in the order sent), or a 422 naming the first that cannot match."""
    patterns = fields.get("allowed_packages")
    if not isinstance(patterns, list):
        return fields
    normalized: list[str] = []
    for position, pattern in enumerate(patterns):
        found = normalized_pattern(pattern, registry.ecosystem)
        if found is None:
            raise ValidationFailed(
                [
                    FieldProblem(
                        "allowed_packages",
                        "invalid",
                        f"entry {position + 1} is not a {registry.ecosystem} package name "
                        "pattern (a normalized name; * for any characters)",
                    )
                ]
            )
        if found not in normalized:
            normalized.append(found)
    return {**fields, "allowed_packages": normalized}


def _dated(fields: dict[str, object], stored: dict[str, object]) -> dict[str, object]:
    """A token must have a moment it works at: ``not_before`` before ``expires_at``
    (as they will be stored: the request's values, else the token's)."""
    not_before = fields.get("not_before", stored.get("not_before"))
    expires_at = fields.get("expires_at", stored.get("expires_at"))
    if (
        isinstance(not_before, datetime)
        and isinstance(expires_at, datetime)
        and not_before >= expires_at
    ):
        raise ValidationFailed([FieldProblem("not_before", "invalid", "must be before expires_at")])
    return fields


@contextmanager
def _registry_still_there() -> Iterator[None]:
    """A registry deleted by a concurrent request between our read and our insert."""
    try:
        yield
    except IntegrityError as exc:
        raise NotFound("registry") from exc


def _described(fields: dict[str, object]) -> dict[str, object]:
    """What an audit event keeps of a change: values, in their wire form, never secrets."""
    described: dict[str, object] = {}
    for name, value in fields.items():
        described[name] = value.isoformat() if isinstance(value, datetime) else value
    return described


def _token_id(token_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(token_id)
    except ValueError:
        raise NotFound("registry token") from None


def _existing(
    tokens: RegistryTokenRepository, registry_id: uuid.UUID, token_id: str
) -> RegistryToken:
    """A live token of the registry, its row locked (PostgreSQL), so two concurrent
    writes to one token take turns instead of both acting on what they read."""
    token = tokens.get_live(registry_id, _token_id(token_id), for_update=True)
    if token is None:
        raise NotFound("registry token")
    return token


def subject_of(token: RegistryToken) -> Subject:
    """What the audit log records of a token loaded with its registry."""
    registry = token.package_registry
    return Subject(
        registry.organization_id, registry.id, registry.slug, token.id, token.description
    )


def _subject(token: RegistryToken, registry: RegistryRow) -> Subject:
    """What the audit log records of a token whose registry this request has read."""
    return Subject(
        registry.organization_id, registry.id, registry.slug, token.id, token.description
    )
