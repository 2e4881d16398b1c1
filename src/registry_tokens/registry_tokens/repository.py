import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Select,
    bindparam,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Label

from registry_tokens.db.queries import Query
from registry_tokens.registries.models import Registry
from registry_tokens.registry_tokens.models import RegistryToken, RetiredSecret
from registry_tokens.users.models import User


class RegistryTokenRepository:
    """Registry tokens; "live" ones are those not revoked (deleted or reported leaked)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_live(
        self, registry_id: uuid.UUID, token_id: uuid.UUID, *, for_update: bool = False
    ) -> RegistryToken | None:
        query = select(RegistryToken).where(
            RegistryToken.registry_id == registry_id,
            RegistryToken.id == token_id,
            RegistryToken.revoked_at.is_(None),
        )
        if for_update:
            # Lock only the token's row: the joined registry and user are not written.
            query = query.with_for_update(of=RegistryToken)
        return self.session.scalar(query)

    def get(self, token_id: uuid.UUID) -> RegistryToken | None:
        return self.session.get(RegistryToken, token_id)

    def existing(self, token_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these tokens still have a row (revoked or not): a registry's deletion
        removes its tokens."""
        ids = set(token_ids)
        return set(self.session.scalars(select(RegistryToken.id).where(RegistryToken.id.in_(ids))))

    def live_in(self, registry_id: uuid.UUID) -> list[RegistryToken]:
        return list(
            self.session.scalars(
                select(RegistryToken).where(
                    RegistryToken.registry_id == registry_id, RegistryToken.revoked_at.is_(None)
                )
            )
        )

    def live_tokens_changed(self, registry_id: uuid.UUID) -> None:
        """Bumps the registry's ``tokens_version``: a token was created, deleted or revoked
        (in the same transaction), so cached counts and page positions no longer hold."""
        self.session.execute(
            update(Registry)
            .where(Registry.id == registry_id)
            .values(tokens_version=Registry.tokens_version + 1)
            # No session object needs the new number: skip finding and updating them.
            .execution_options(synchronize_session=False)
        )

    def add(self, token: RegistryToken) -> None:
        self.session.add(token)
        self.session.flush()

    def end_grace_periods(self, token_id: uuid.UUID, not_after: datetime) -> None:
        self.session.execute(
            update(RetiredSecret)
            .where(
                RetiredSecret.registry_token_id == token_id,
                RetiredSecret.valid_until > not_after,
            )
            .values(valid_until=not_after)
        )

    def end_grace_of(self, secret_hash: bytes, not_after: datetime) -> bool:
        """A retired secret stops working at ``not_after`` if it would have outlived it;
        whether it would have (so this changed it)."""
        result = self.session.execute(
            update(RetiredSecret)
            .where(RetiredSecret.secret_hash == secret_hash, RetiredSecret.valid_until > not_after)
            .values(valid_until=not_after)
        )
        return bool(getattr(result, "rowcount", 0))

    def add_retired_secret(self, retired: RetiredSecret) -> None:
        self.session.add(retired)
        self.session.flush()

    def record_use(
        self, token_id: uuid.UUID, moment: datetime, address: str | None, not_since: datetime
    ) -> bool:
        """Stamps the token as used unless a use since ``not_since`` is already stamped.

        One conditional UPDATE: however many workers race, at most one writes per interval.
        """
        result = self.session.execute(
            update(RegistryToken)
            .where(
                RegistryToken.id == token_id,
                or_(RegistryToken.last_used_at.is_(None), RegistryToken.last_used_at < not_since),
            )
            .values(last_used_at=moment, last_used_ip=address)
        )
        return bool(getattr(result, "rowcount", 0))


class PresentedCredential(NamedTuple):
    """The registry token a presented secret belongs to, as its current secret or as one
    a rotation retired (``grace_ends_at`` set), with the stored digest to compare in
    constant time and what the audit log records of the token."""

    id: uuid.UUID
    description: str
    registry_id: uuid.UUID
    registry_slug: str
    organization_id: uuid.UUID
    revoked_at: datetime | None
    expires_at: datetime | None
    allowed_cidrs: list[str] | None
    last_used_at: datetime | None
    allowed_packages: list[str] | None
    not_before: datetime | None
    disabled_at: datetime | None
    max_downloads: int | None
    max_clients: int | None
    max_bytes: int | None
    quota_period: str | None
    usage_since: datetime | None
    created_at: datetime
    secret_hash: bytes
    grace_ends_at: datetime | None
    retired: int

    @property
    def has_quota(self) -> bool:
        """Whether its downloads are counted before they are served (else after)."""
        return not (
            self.max_downloads is None and self.max_clients is None and self.max_bytes is None
        )


_CREDENTIAL_COLUMNS = (
    RegistryToken.id.label("id"),
    RegistryToken.description.label("description"),
    RegistryToken.registry_id.label("registry_id"),
    Registry.slug.label("registry_slug"),
    Registry.organization_id.label("organization_id"),
    RegistryToken.revoked_at.label("revoked_at"),
    RegistryToken.expires_at.label("expires_at"),
    RegistryToken.allowed_cidrs.label("allowed_cidrs"),
    RegistryToken.last_used_at.label("last_used_at"),
    RegistryToken.allowed_packages.label("allowed_packages"),
    RegistryToken.not_before.label("not_before"),
    RegistryToken.disabled_at.label("disabled_at"),
    RegistryToken.max_downloads.label("max_downloads"),
    RegistryToken.max_clients.label("max_clients"),
    RegistryToken.max_bytes.label("max_bytes"),
    RegistryToken.quota_period.label("quota_period"),
    RegistryToken.usage_since.label("usage_since"),
    RegistryToken.created_at.label("created_at"),
)


def _presented_credential() -> Query[PresentedCredential]:
    secret_hash = bindparam("secret_hash", type_=RegistryToken.secret_hash.type)
    current = (
        select(
            *_CREDENTIAL_COLUMNS,
            RegistryToken.secret_hash.label("secret_hash"),
            literal(None, RetiredSecret.valid_until.type).label("grace_ends_at"),
            literal(0).label("retired"),
        )
        .join(Registry, Registry.id == RegistryToken.registry_id)
        .where(RegistryToken.secret_hash == secret_hash)
    )
    retired = (
        select(
            *_CREDENTIAL_COLUMNS,
            RetiredSecret.secret_hash.label("secret_hash"),
            RetiredSecret.valid_until.label("grace_ends_at"),
            literal(1).label("retired"),
        )
        .join(RetiredSecret, RetiredSecret.registry_token_id == RegistryToken.id)
        .join(Registry, Registry.id == RegistryToken.registry_id)
        .where(RetiredSecret.secret_hash == secret_hash)
    )
    return Query(current.union_all(retired), PresentedCredential)


# "Which registry token does this secret belong to?" At most one row: digests are unique
# in each table, and a digest is never in both (256 random bits). Installs and leak
# reports ask it.
PRESENTED_CREDENTIAL = _presented_credential()


class TokenRow(NamedTuple):
    """A live registry token as every read shows it, with its creator, and the
    registry's ``tokens_version`` as of the same statement."""

    id: uuid.UUID
    description: str
    created_at: datetime
    expires_at: datetime | None
    allowed_cidrs: list[str] | None
    last_used_at: datetime | None
    last_used_ip: str | None
    allowed_packages: list[str] | None
    not_before: datetime | None
    max_downloads: int | None
    max_clients: int | None
    max_bytes: int | None
    quota_period: str | None
    disabled_at: datetime | None
    usage_since: datetime | None
    usage_period_start: datetime | None
    usage_downloads: int
    usage_bytes: int
    usage_clients: int
    creator_id: uuid.UUID
    creator_name: str
    creator_email: str
    creator_avatar_url: str | None
    creator_created_at: datetime
    tokens_version: int


class TokenCount(NamedTuple):
    total: int
    tokens_version: int


_NEWEST_FIRST = (RegistryToken.created_at.desc(), RegistryToken.id.desc())


def _tokens_version() -> Label[int]:
    return (
        select(Registry.tokens_version)
        .where(Registry.id == bindparam("registry_id", type_=Registry.id.type))
        .scalar_subquery()
        .label("tokens_version")
    )


def _token_rows() -> Select[*tuple[Any, ...]]:
    return select(
        RegistryToken.id.label("id"),
        RegistryToken.description.label("description"),
        RegistryToken.created_at.label("created_at"),
        RegistryToken.expires_at.label("expires_at"),
        RegistryToken.allowed_cidrs.label("allowed_cidrs"),
        RegistryToken.last_used_at.label("last_used_at"),
        RegistryToken.last_used_ip.label("last_used_ip"),
        RegistryToken.allowed_packages.label("allowed_packages"),
        RegistryToken.not_before.label("not_before"),
        RegistryToken.max_downloads.label("max_downloads"),
        RegistryToken.max_clients.label("max_clients"),
        RegistryToken.max_bytes.label("max_bytes"),
        RegistryToken.quota_period.label("quota_period"),
        RegistryToken.disabled_at.label("disabled_at"),
        RegistryToken.usage_since.label("usage_since"),
        RegistryToken.usage_period_start.label("usage_period_start"),
        RegistryToken.usage_downloads.label("usage_downloads"),
        RegistryToken.usage_bytes.label("usage_bytes"),
        RegistryToken.usage_clients.label("usage_clients"),
        User.id.label("creator_id"),
        User.name.label("creator_name"),
        User.email.label("creator_email"),
        User.avatar_url.label("creator_avatar_url"),
        User.created_at.label("creator_created_at"),
        _tokens_version(),
    ).join(User, User.id == RegistryToken.created_by_id)


def _live(query: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    return query.where(
        RegistryToken.registry_id == bindparam("registry_id", type_=Registry.id.type),
        RegistryToken.revoked_at.is_(None),
    )


def _in_state(query: Select[*tuple[Any, ...]], state: str | None) -> Select[*tuple[Any, ...]]:
    now = bindparam("now", type_=RegistryToken.created_at.type)
    if state == "active":
        return query.where(or_(RegistryToken.expires_at.is_(None), RegistryToken.expires_at > now))
    if state == "expired":
        return query.where(RegistryToken.expires_at <= now)
    return query


# "This live token of this registry", by id.
LIVE_TOKEN = Query(_live(_token_rows()).where(RegistryToken.id == bindparam("token_id")), TokenRow)


def _live_page(state: str | None) -> Query[TokenRow]:
    """A page of a registry's live tokens (in ``state``), newest first (the id breaks
    ties within a millisecond). The page's ids are picked from the index alone, then
    joined, so skipping to a deep page does not read the skipped rows."""
    page_ids = (
        _in_state(_live(select(RegistryToken.id)), state)
        .order_by(*_NEWEST_FIRST)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return Query(
        _token_rows()
        .where(RegistryToken.id.in_(page_ids.scalar_subquery()))
        .order_by(*_NEWEST_FIRST),
        TokenRow,
    )


def _live_count(state: str | None) -> Query[TokenCount]:
    query = _live(select(func.count().label("total"), _tokens_version()).select_from(RegistryToken))
    return Query(_in_state(query, state), TokenCount)


STATES = ("active", "expired")
# "A page of this registry's live tokens (in this state)" and "how many are there".
LIVE_PAGES = {state: _live_page(state) for state in (None, *STATES)}
LIVE_COUNTS = {state: _live_count(state) for state in (None, *STATES)}

# A page of every live token from a known first row on, found by seeking the index rather
# than by counting past the rows before it (what the list has learned of page starts).
LIVE_PAGE_FROM = Query(
    _live(_token_rows())
    .where(
        tuple_(RegistryToken.created_at, RegistryToken.id)
        <= tuple_(
            bindparam("start_created_at", type_=RegistryToken.created_at.type),
            bindparam("start_id", type_=RegistryToken.id.type),
        )
    )
    .order_by(*_NEWEST_FIRST)
    .limit(bindparam("limit")),
    TokenRow,
)


class QuotaState(NamedTuple):
    """A token's quotas and counts as stored now: which quota refused a download."""

    max_downloads: int | None
    max_clients: int | None
    max_bytes: int | None
    quota_period: str | None
    usage_since: datetime | None
    usage_period_start: datetime | None
    usage_downloads: int
    usage_bytes: int
    usage_clients: int


# "What are this token's quotas and counts now?" (after a refused download).
QUOTA_STATE = Query(
    select(
        RegistryToken.max_downloads.label("max_downloads"),
        RegistryToken.max_clients.label("max_clients"),
        RegistryToken.max_bytes.label("max_bytes"),
        RegistryToken.quota_period.label("quota_period"),
        RegistryToken.usage_since.label("usage_since"),
        RegistryToken.usage_period_start.label("usage_period_start"),
        RegistryToken.usage_downloads.label("usage_downloads"),
        RegistryToken.usage_bytes.label("usage_bytes"),
        RegistryToken.usage_clients.label("usage_clients"),
    ).where(RegistryToken.id == bindparam("token_id", type_=RegistryToken.id.type)),
    QuotaState,
)
