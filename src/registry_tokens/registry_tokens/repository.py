import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
from sqlalchemy.sql.selectable import ScalarSelect

from registry_tokens.db.prepared import AnySelect
from registry_tokens.kit.secrets import digests_match
from registry_tokens.registries.models import Registry
from registry_tokens.registries.repository import RegistryView
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

    def get_by_secret_hash(self, secret_hash: bytes) -> RegistryToken | None:
        """The token whose current secret this is, live or revoked."""
        return self.session.scalar(
            select(RegistryToken).where(RegistryToken.secret_hash == secret_hash)
        )

    def get_retired_secret(self, secret_hash: bytes) -> RetiredSecret | None:
        return self.session.get(RetiredSecret, secret_hash)

    def find_by_secret_hash(
        self, secret_hash: bytes
    ) -> tuple[RegistryToken, RetiredSecret | None] | None:
        """The token a presented secret belongs to, as its current secret (retired: None)
        or as one a rotation retired; None for a secret no token ever had."""
        token = self.get_by_secret_hash(secret_hash)
        retired = None
        if token is None:
            retired = self.get_retired_secret(secret_hash)
            token = self.get(retired.registry_token_id) if retired is not None else None
        if token is None:
            return None
        stored = token.secret_hash if retired is None else retired.secret_hash
        return (token, retired) if digests_match(stored, secret_hash) else None

    def get(self, token_id: uuid.UUID) -> RegistryToken | None:
        return self.session.get(RegistryToken, token_id)

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


# What the install path needs to know of the token a presented secret belongs to.
_INSTALL_COLUMNS = (
    RegistryToken.id,
    RegistryToken.registry_id,
    RegistryToken.revoked_at,
    RegistryToken.expires_at,
    RegistryToken.allowed_cidrs,
    RegistryToken.last_used_at,
)


def install_credential_by_secret_hash() -> AnySelect:
    """For :meth:`Database.prepare`: the token whose current secret has this digest, or
    one a rotation retired it from, with the retired secret's end of grace (``None`` for a
    current secret) and the stored digest to compare in constant time. At most one row:
    digests are unique in each table, and a digest is never in both (256 random bits)."""
    secret_hash = bindparam("secret_hash", type_=RegistryToken.secret_hash.type)
    current = select(
        *_INSTALL_COLUMNS,
        RegistryToken.secret_hash,
        literal(None, RetiredSecret.valid_until.type).label("valid_until"),
        literal(0).label("retired"),
    ).where(RegistryToken.secret_hash == secret_hash)
    retired = (
        select(
            *_INSTALL_COLUMNS,
            RetiredSecret.secret_hash,
            RetiredSecret.valid_until,
            literal(1).label("retired"),
        )
        .join(RetiredSecret, RetiredSecret.registry_token_id == RegistryToken.id)
        .where(RetiredSecret.secret_hash == secret_hash)
    )
    return current.union_all(retired)


@dataclass(frozen=True)
class UserView:
    id: uuid.UUID
    name: str
    email: str
    avatar_url: str | None
    created_at: datetime


@dataclass(frozen=True)
class RegistryTokenView:
    """A live token as the read paths (get, list) show it, read without the ORM."""

    id: uuid.UUID
    description: str
    created_at: datetime
    expires_at: datetime | None
    allowed_cidrs: list[str] | None
    last_used_at: datetime | None
    last_used_ip: str | None
    created_by: UserView
    package_registry: RegistryView

    @classmethod
    def of_row(cls, row: Sequence[Any], registry: RegistryView) -> "RegistryTokenView":
        """A row of :func:`live_token_views`, in its column order (later columns ignored)."""
        (token_id, description, created_at, expires_at, allowed_cidrs, last_used_at,
         last_used_ip, *creator) = row[:12]  # fmt: skip
        return cls(
            token_id,
            description,
            created_at,
            expires_at,
            allowed_cidrs,
            last_used_at,
            last_used_ip,
            created_by=UserView(*creator),
            package_registry=registry,
        )


def live_token_views() -> Select[*tuple[Any, ...]]:
    """For :meth:`Database.prepare`: a registry's live tokens as :class:`RegistryTokenView`
    rows."""
    return _token_views().where(
        RegistryToken.registry_id == bindparam("registry_id"),
        RegistryToken.revoked_at.is_(None),
    )


def _token_views() -> Select[*tuple[Any, ...]]:
    return select(
        RegistryToken.id,
        RegistryToken.description,
        RegistryToken.created_at,
        RegistryToken.expires_at,
        RegistryToken.allowed_cidrs,
        RegistryToken.last_used_at,
        RegistryToken.last_used_ip,
        User.id,
        User.name,
        User.email,
        User.avatar_url,
        User.created_at,
    ).join(User, User.id == RegistryToken.created_by_id)


def live_token_view() -> Select[*tuple[Any, ...]]:
    """For :meth:`Database.prepare`: one live token of a registry, by id."""
    return live_token_views().where(RegistryToken.id == bindparam("token_id"))


def live_token_view_page(state: str | None) -> Select[*tuple[Any, ...]]:
    """For :meth:`Database.prepare`: a page of live tokens, newest first (the id breaks
    ties within a millisecond), each row ending with the registry's ``tokens_version`` as
    of the same statement. The page's ids are picked from the index alone, then joined,
    so skipping to a deep page does not read the skipped rows."""
    page_ids = (
        _in_state(select(RegistryToken.id), state)
        .where(
            RegistryToken.registry_id == bindparam("registry_id"),
            RegistryToken.revoked_at.is_(None),
        )
        .order_by(*_NEWEST_FIRST)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return (
        _token_views()  # by primary key: the page's ids already say which tokens
        .add_columns(_tokens_version())
        .where(RegistryToken.id.in_(page_ids.scalar_subquery()))
        .order_by(*_NEWEST_FIRST)
    )


def live_token_view_page_from() -> Select[*tuple[Any, ...]]:
    """:func:`live_token_view_page` (every state) from a known first row on: the tokens
    from ``(start_created_at, start_id)`` on, newest first, found by seeking the index
    rather than by counting past the rows before it."""
    start = tuple_(
        bindparam("start_created_at", type_=RegistryToken.created_at.type),
        bindparam("start_id", type_=RegistryToken.id.type),
    )
    return (
        live_token_views()
        .add_columns(_tokens_version())
        .where(tuple_(RegistryToken.created_at, RegistryToken.id) <= start)
        .order_by(*_NEWEST_FIRST)
        .limit(bindparam("limit"))
    )


def live_token_count(state: str | None) -> Select[*tuple[Any, ...]]:
    """For :meth:`Database.prepare`: how many live tokens a registry has (in ``state``),
    and its ``tokens_version`` as of the same statement."""
    query = select(func.count(), _tokens_version()).where(
        RegistryToken.registry_id == bindparam("registry_id"),
        RegistryToken.revoked_at.is_(None),
    )
    return _in_state(query.select_from(RegistryToken), state)


_NEWEST_FIRST = (RegistryToken.created_at.desc(), RegistryToken.id.desc())


def _tokens_version() -> ScalarSelect[int]:
    return (
        select(Registry.tokens_version)
        .where(Registry.id == bindparam("registry_id", type_=Registry.id.type))
        .scalar_subquery()
    )


def _in_state(query: Select[*tuple[Any, ...]], state: str | None) -> Select[*tuple[Any, ...]]:
    now = bindparam("now", type_=RegistryToken.created_at.type)
    if state == "active":
        return query.where(or_(RegistryToken.expires_at.is_(None), RegistryToken.expires_at > now))
    if state == "expired":
        return query.where(RegistryToken.expires_at <= now)
    return query
